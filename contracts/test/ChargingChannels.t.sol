// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {ChargingChannels} from "../src/ChargingChannels.sol";
import {IChargingChannels} from "../src/interfaces/IChargingChannels.sol";
import {DemoToken} from "../src/DemoToken.sol";
import {ReentrantToken} from "./mocks/ReentrantToken.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @dev The one cheatcode the tests need beyond utils/Test.sol: reading a storage slot.
interface VmStorage {
    function load(address target, bytes32 slot) external view returns (bytes32);
}

/// @notice Shared fixtures: a demo token, a payer (the car) with a key, a payee (the CPO).
abstract contract ChargingChannelsFixture is Test {
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    ChargingChannels internal channels;
    DemoToken internal token;
    uint256 internal payerKey = 0xCA11;
    address internal payer;
    address internal payee = address(0xC0);
    address internal stranger = address(0x55);
    uint64 internal expiresAt;

    function setUp() public virtual {
        channels = new ChargingChannels();
        token = new DemoToken("Demo", "DEMO", address(this));
        payer = vm.addr(payerKey);
        token.mint(payer, 1_000e18);
        vm.prank(payer);
        token.approve(address(channels), type(uint256).max);
        expiresAt = uint64(block.timestamp + 7 days);
    }

    function _voucher(uint256 signerKey, ChargingChannels target, bytes32 id, uint256 cumulative, uint64 meterWh)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, target.voucherDigest(id, cumulative, meterWh));
        return abi.encodePacked(r, s, v);
    }

    function _voucher(bytes32 id, uint256 cumulative, uint64 meterWh) internal view returns (bytes memory) {
        return _voucher(payerKey, channels, id, cumulative, meterWh);
    }

    /// @dev Opens a channel from `payer` to `payee` in `token`; returns its key and id.
    function _open(uint256 deposit, uint256 nonce)
        internal
        returns (IChargingChannels.ChannelKey memory key, bytes32 id)
    {
        vm.prank(payer);
        id = channels.open(payee, address(token), deposit, expiresAt, nonce);
        key = _key(payer, nonce);
    }

    function _key(address from, uint256 nonce) internal view returns (IChargingChannels.ChannelKey memory) {
        return IChargingChannels.ChannelKey({payer: from, payee: payee, token: address(token), nonce: nonce});
    }

    function _permit(uint256 signerKey, address spender, uint256 value, uint256 deadline)
        internal
        view
        returns (uint8 v, bytes32 r, bytes32 s)
    {
        address holder = vm.addr(signerKey);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                holder,
                spender,
                value,
                token.nonces(holder),
                deadline
            )
        );
        return vm.sign(signerKey, keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash)));
    }
}

contract ChargingChannelsTest is ChargingChannelsFixture {
    /// @dev `_channels` follows OZ EIP712's two fallback strings (slots 0 and 1).
    uint256 private constant CHANNELS_SLOT = 2;

    function _slot(bytes32 id) private view returns (uint256) {
        return uint256(VmStorage(address(vm)).load(address(channels), keccak256(abi.encode(id, CHANNELS_SLOT))));
    }

    // ------------------------------------------------------------ open

    function test_open() public {
        bytes32 expectedId = keccak256(abi.encode(payer, payee, address(token), uint256(1)));
        assertEq(channels.channelIdOf(_key(payer, 1)), expectedId);
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelOpened(expectedId, payer, payee, address(token), 10e18, expiresAt);
        (, bytes32 id) = _open(10e18, 1);
        assertEq(id, expectedId);
        IChargingChannels.Channel memory c = channels.channel(id);
        assertEq(c.deposit, 10e18);
        assertEq(c.paid, 0);
        assertEq(c.expiresAt, expiresAt);
        assertFalse(c.closed);
        assertEq(token.balanceOf(address(channels)), 10e18);
        assertEq(token.balanceOf(payer), 990e18);
    }

    function test_storage_oneSlotPerChannel() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        // deposit | paid << 96 | expiresAt << 192, nothing else: the parties and the token live in the id.
        assertEq(_slot(id), 10e18 | (uint256(expiresAt) << 192));
        bytes memory v = _voucher(id, 4e18, 1);
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v);
        assertEq(_slot(id), 10e18 | (uint256(4e18) << 96) | (uint256(expiresAt) << 192));
        // Closed: the expiry is zeroed, the final deposit and paid stay (and keep the id taken).
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        assertEq(_slot(id), 10e18 | (uint256(4e18) << 96));
        assertEq(_slot(bytes32(uint256(id) + 1)), 0);
    }

    function test_channel_unknownIsAllZero() public view {
        IChargingChannels.Channel memory c = channels.channel(keccak256("nothing"));
        assertEq(c.deposit, 0);
        assertEq(c.paid, 0);
        assertEq(c.expiresAt, 0);
        assertFalse(c.closed);
    }

    function test_openWithPermit_needsNoApproval() public {
        uint256 carKey = 0xCA12;
        address car = vm.addr(carKey);
        token.mint(car, 5e18);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(carKey, address(channels), 5e18, deadline);
        vm.prank(car);
        bytes32 id = channels.openWithPermit(payee, address(token), 5e18, expiresAt, 0, deadline, v, r, s);
        assertEq(id, channels.channelIdOf(_key(car, 0)));
        assertEq(channels.channel(id).deposit, 5e18);
        assertEq(token.balanceOf(car), 0);
        assertEq(token.allowance(car, address(channels)), 0);
    }

    function test_openWithPermit_survivesFrontRunPermit() public {
        uint256 carKey = 0xCA12;
        address car = vm.addr(carKey);
        token.mint(car, 5e18);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(carKey, address(channels), 5e18, deadline);
        // Someone copies the permit from the mempool and submits it first.
        vm.prank(stranger);
        token.permit(car, address(channels), 5e18, deadline, v, r, s);
        vm.prank(car);
        bytes32 id = channels.openWithPermit(payee, address(token), 5e18, expiresAt, 0, deadline, v, r, s);
        assertEq(channels.channel(id).deposit, 5e18);
    }

    function test_openWithPermit_badPermitWithoutAllowanceReverts() public {
        uint256 carKey = 0xCA12;
        address car = vm.addr(carKey);
        token.mint(car, 5e18);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(0xBAD, address(channels), 5e18, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(channels), uint256(0), uint256(5e18)
            )
        );
        vm.prank(car);
        channels.openWithPermit(payee, address(token), 5e18, expiresAt, 0, deadline, v, r, s);
    }

    function test_open_errors() public {
        vm.startPrank(payer);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidPayee.selector, address(0))
        );
        channels.open(address(0), address(token), 1, expiresAt, 0);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidPayee.selector, payer));
        channels.open(payer, address(token), 1, expiresAt, 0);
        vm.expectRevert(IChargingChannels.ChargingChannelsZeroAmount.selector);
        channels.open(payee, address(token), 0, expiresAt, 0);
        uint256 tooMuch = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsAmountTooLarge.selector, tooMuch));
        channels.open(payee, address(token), tooMuch, expiresAt, 0);
        uint64 now_ = uint64(block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidExpiry.selector, now_));
        channels.open(payee, address(token), 1, now_, 0);
        bytes32 id = channels.open(payee, address(token), 1, expiresAt, 0);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsChannelExists.selector, id));
        channels.open(payee, address(token), 1, expiresAt, 0);
        vm.stopPrank();

        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(channels), 0, 1)
        );
        vm.prank(stranger);
        channels.open(payee, address(token), 1, expiresAt, 0);
    }

    function test_open_closedIdStaysTaken() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 3e18, 1);
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        // Re-opening the same id would let the old voucher pay again: refused.
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsChannelExists.selector, id));
        vm.prank(payer);
        channels.open(payee, address(token), 10e18, expiresAt, 0);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsChannelClosed.selector, id));
        vm.prank(payee);
        channels.claim(key, 3e18, 1, v);
    }

    // ------------------------------------------------------------ claim

    function test_claim_paysTheIncrement() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v1 = _voucher(id, 2e18, 7_000);
        vm.expectEmit(address(channels));
        emit IChargingChannels.Claimed(id, 2e18, 2e18);
        vm.prank(payee);
        channels.claim(key, 2e18, 7_000, v1);
        // A later session on the same channel: the cumulative amount grows.
        bytes memory v2 = _voucher(id, 5e18, 18_000);
        vm.expectEmit(address(channels));
        emit IChargingChannels.Claimed(id, 5e18, 3e18);
        vm.prank(payee);
        channels.claim(key, 5e18, 18_000, v2);
        assertEq(token.balanceOf(payee), 5e18);
        assertEq(channels.channel(id).paid, 5e18);
        assertEq(token.balanceOf(address(channels)), 5e18);
        // The whole deposit may be claimed.
        bytes memory v3 = _voucher(id, 10e18, 36_000);
        vm.prank(payee);
        channels.claim(key, 10e18, 36_000, v3);
        assertEq(token.balanceOf(payee), 10e18);
    }

    function test_claim_afterExpiryUntilReclaimed() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        vm.warp(uint256(expiresAt) + 1 days);
        bytes memory v = _voucher(id, 1e18, 1);
        vm.prank(payee);
        channels.claim(key, 1e18, 1, v);
        assertEq(token.balanceOf(payee), 1e18);
    }

    function test_claim_errors() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 2e18, 1);
        IChargingChannels.ChannelKey memory unknown = _key(payer, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChargingChannels.ChargingChannelsUnknownChannel.selector, channels.channelIdOf(unknown)
            )
        );
        vm.prank(payee);
        channels.claim(unknown, 2e18, 1, v);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotPayee.selector, id, payer));
        vm.prank(payer);
        channels.claim(key, 2e18, 1, v);
        bytes memory zero = _voucher(id, 0, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsVoucherNotIncreasing.selector, id, 0, 0)
        );
        vm.prank(payee);
        channels.claim(key, 0, 1, zero);
        // A different meter reading than signed recovers to someone else.
        address other = ECDSA.recover(channels.voucherDigest(id, 2e18, 2), v);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, other));
        vm.prank(payee);
        channels.claim(key, 2e18, 2, v);
        // Signed by someone other than the payer.
        bytes memory forged = _voucher(0xBAD, channels, id, 2e18, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, vm.addr(0xBAD))
        );
        vm.prank(payee);
        channels.claim(key, 2e18, 1, forged);
        // Malformed: wrong length.
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, address(0))
        );
        vm.prank(payee);
        channels.claim(key, 2e18, 1, bytes.concat(v, hex"00"));
    }

    /// @dev The key is the only way to a channel's slot: change any of its four fields and the id
    ///      is another, unknown one, so nobody can name other parties or another token for a channel.
    function test_key_mustBeTheOpeningOne() public {
        (IChargingChannels.ChannelKey memory key,) = _open(10e18, 0);
        IChargingChannels.ChannelKey[4] memory wrong;
        for (uint256 i; i < 4; ++i) {
            wrong[i] = IChargingChannels.ChannelKey(key.payer, key.payee, key.token, key.nonce);
        }
        wrong[0].payer = stranger;
        wrong[1].payee = stranger;
        wrong[2].token = address(new DemoToken("Other", "OTH", address(this)));
        wrong[3].nonce = 1;
        for (uint256 i; i < 4; ++i) {
            bytes32 wrongId = channels.channelIdOf(wrong[i]);
            bytes memory v = _voucher(wrongId, 1e18, 1);
            bytes memory unknown =
                abi.encodeWithSelector(IChargingChannels.ChargingChannelsUnknownChannel.selector, wrongId);
            vm.expectRevert(unknown);
            vm.prank(wrong[i].payee);
            channels.claim(wrong[i], 1e18, 1, v);
            vm.expectRevert(unknown);
            vm.prank(wrong[i].payee);
            channels.close(wrong[i], 0, 0, "");
            vm.startPrank(wrong[i].payer);
            vm.expectRevert(unknown);
            channels.topUp(wrong[i], 1);
            vm.expectRevert(unknown);
            channels.extend(wrong[i], expiresAt + 1);
            vm.warp(expiresAt);
            vm.expectRevert(unknown);
            channels.reclaim(wrong[i]);
            vm.stopPrank();
        }
    }

    function test_claim_rejectsHighS() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(payerKey, channels.voucherDigest(id, 1e18, 1));
        // The same signature in its malleable twin form (n - s, flipped parity): ecrecover accepts it.
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        assertEq(ecrecover(channels.voucherDigest(id, 1e18, 1), v == 27 ? 28 : 27, r, bytes32(SECP256K1_N - uint256(s))), payer);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, address(0))
        );
        vm.prank(payee);
        channels.claim(key, 1e18, 1, twin);
    }

    // ------------------------------------------------------------ attacks

    function test_attack_staleVoucherAfterNewer() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory older = _voucher(id, 2e18, 1);
        bytes memory newer = _voucher(id, 3e18, 2);
        vm.prank(payee);
        channels.claim(key, 3e18, 2, newer);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsVoucherNotIncreasing.selector, id, 2e18, 3e18)
        );
        vm.prank(payee);
        channels.claim(key, 2e18, 1, older);
        // Replaying the same voucher pays nothing either.
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsVoucherNotIncreasing.selector, id, 3e18, 3e18)
        );
        vm.prank(payee);
        channels.claim(key, 3e18, 2, newer);
    }

    function test_attack_aboveDeposit() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 10e18 + 1, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChargingChannels.ChargingChannelsVoucherExceedsDeposit.selector, id, 10e18 + 1, 10e18
            )
        );
        vm.prank(payee);
        channels.claim(key, 10e18 + 1, 1, v);
        // After a top-up the same voucher is good: vouchers are bounded by the deposit at claim time.
        vm.prank(payer);
        channels.topUp(key, 1);
        vm.prank(payee);
        channels.claim(key, 10e18 + 1, 1, v);
        assertEq(token.balanceOf(payee), 10e18 + 1);
    }

    function test_attack_voucherReplayedOnAnotherChannel() public {
        (IChargingChannels.ChannelKey memory first, bytes32 firstId) = _open(10e18, 0);
        (IChargingChannels.ChannelKey memory second, bytes32 secondId) = _open(10e18, 1);
        bytes memory v = _voucher(firstId, 4e18, 1);
        vm.prank(payee);
        channels.claim(first, 4e18, 1, v);
        address recovered = ECDSA.recover(channels.voucherDigest(secondId, 4e18, 1), v);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, secondId, recovered)
        );
        vm.prank(payee);
        channels.claim(second, 4e18, 1, v);
    }

    function test_attack_voucherFromAnotherChain() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 4e18, 1);
        vm.chainId(31337 + 1);
        address recovered = ECDSA.recover(channels.voucherDigest(id, 4e18, 1), v);
        assertTrue(recovered != payer);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, recovered));
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v);
    }

    function test_attack_voucherForAnotherContract() public {
        ChargingChannels other = new ChargingChannels();
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        // The same channel id, signed for another deployment's domain.
        bytes memory v = _voucher(payerKey, other, id, 4e18, 1);
        address recovered = ECDSA.recover(channels.voucherDigest(id, 4e18, 1), v);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, recovered));
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v);
    }

    function test_attack_reentrancyThroughToken() public {
        ReentrantToken hostile = new ReentrantToken();
        hostile.mint(payer, 10e18);
        vm.startPrank(payer);
        hostile.approve(address(channels), type(uint256).max);
        bytes32 id = channels.open(payee, address(hostile), 10e18, expiresAt, 0);
        vm.stopPrank();
        IChargingChannels.ChannelKey memory key =
            IChargingChannels.ChannelKey({payer: payer, payee: payee, token: address(hostile), nonce: 0});
        bytes memory v = _voucher(id, 4e18, 1);
        // During the payout the token tries to claim the same voucher again (as if it were the payee).
        hostile.arm(address(channels), abi.encodeCall(ChargingChannels.claim, (key, 4e18, 1, v)));
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v);
        assertTrue(hostile.attempted());
        assertFalse(hostile.reentered());
        assertEq(
            hostile.revertData(), abi.encodeWithSelector(ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector)
        );
        assertEq(hostile.balanceOf(payee), 4e18);
        assertEq(hostile.balanceOf(address(channels)), 6e18);
        assertEq(channels.channel(id).paid, 4e18);
    }

    // ------------------------------------------------------------ top-up and extend

    function test_topUp() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelToppedUp(id, 5e18, 15e18);
        vm.prank(payer);
        channels.topUp(key, 5e18);
        assertEq(channels.channel(id).deposit, 15e18);
        assertEq(token.balanceOf(address(channels)), 15e18);
    }

    function test_topUpWithPermit() public {
        uint256 carKey = 0xCA12;
        address car = vm.addr(carKey);
        token.mint(car, 8e18);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(carKey, address(channels), 5e18, deadline);
        vm.prank(car);
        bytes32 id = channels.openWithPermit(payee, address(token), 5e18, expiresAt, 0, deadline, v, r, s);
        (v, r, s) = _permit(carKey, address(channels), 3e18, deadline);
        vm.prank(car);
        channels.topUpWithPermit(_key(car, 0), 3e18, deadline, v, r, s);
        assertEq(channels.channel(id).deposit, 8e18);
        assertEq(token.balanceOf(car), 0);
    }

    function test_withPermit_clearErrors() public {
        // A "token" without code: SafeERC20's error, not an opaque revert from the permit attempt.
        address noCode = address(0xDEAD);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, noCode));
        vm.prank(payer);
        channels.openWithPermit(payee, noCode, 1, expiresAt, 0, block.timestamp, 27, bytes32(0), bytes32(0));
        IChargingChannels.ChannelKey memory unknown = _key(payer, 7);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChargingChannels.ChargingChannelsUnknownChannel.selector, channels.channelIdOf(unknown)
            )
        );
        vm.prank(payer);
        channels.topUpWithPermit(unknown, 1, block.timestamp, 27, bytes32(0), bytes32(0));
    }

    function test_topUp_errors() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotPayer.selector, id, payee));
        vm.prank(payee);
        channels.topUp(key, 1);
        vm.startPrank(payer);
        vm.expectRevert(IChargingChannels.ChargingChannelsZeroAmount.selector);
        channels.topUp(key, 0);
        uint256 rest = uint256(type(uint96).max) - 10e18;
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsAmountTooLarge.selector, uint256(type(uint96).max) + 1)
        );
        channels.topUp(key, rest + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsAmountTooLarge.selector, type(uint256).max)
        );
        channels.topUp(key, type(uint256).max);
        vm.stopPrank();
    }

    function test_extend() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        uint64 later = expiresAt + 1 days;
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelExtended(id, later);
        vm.prank(payer);
        channels.extend(key, later);
        assertEq(channels.channel(id).expiresAt, later);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidExpiry.selector, later));
        vm.prank(payer);
        channels.extend(key, later);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotPayer.selector, id, payee));
        vm.prank(payee);
        channels.extend(key, later + 1);
        // The deposit and what was paid are untouched.
        assertEq(channels.channel(id).deposit, 10e18);
    }

    // ------------------------------------------------------------ close and reclaim

    function test_close_settlesAndRefunds() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v1 = _voucher(id, 1e18, 1);
        vm.prank(payee);
        channels.claim(key, 1e18, 1, v1);
        bytes memory v2 = _voucher(id, 3e18, 2);
        vm.expectEmit(address(channels));
        emit IChargingChannels.Claimed(id, 3e18, 2e18);
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelClosed(id, 7e18);
        vm.prank(payee);
        channels.close(key, 3e18, 2, v2);
        assertEq(token.balanceOf(payee), 3e18);
        assertEq(token.balanceOf(payer), 997e18);
        assertEq(token.balanceOf(address(channels)), 0);
        IChargingChannels.Channel memory c = channels.channel(id);
        assertTrue(c.closed);
        assertEq(c.paid, 3e18);
        assertEq(c.deposit, 10e18);
        assertEq(c.expiresAt, 0);
    }

    function test_close_withoutNewVoucher() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v1 = _voucher(id, 4e18, 1);
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v1);
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelClosed(id, 6e18);
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        assertEq(token.balanceOf(payer), 996e18);
    }

    function test_close_errors() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotPayee.selector, id, payer));
        vm.prank(payer);
        channels.close(key, 0, 0, "");
        bytes memory forged = _voucher(0xBAD, channels, id, 5e18, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, vm.addr(0xBAD))
        );
        vm.prank(payee);
        channels.close(key, 5e18, 1, forged);
    }

    function test_closedChannelIsFinal() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 5e18, 1);
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        bytes memory closedErr = abi.encodeWithSelector(IChargingChannels.ChargingChannelsChannelClosed.selector, id);
        vm.expectRevert(closedErr);
        vm.prank(payee);
        channels.claim(key, 5e18, 1, v);
        vm.expectRevert(closedErr);
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        vm.warp(expiresAt);
        vm.startPrank(payer);
        vm.expectRevert(closedErr);
        channels.reclaim(key);
        vm.expectRevert(closedErr);
        channels.topUp(key, 1);
        vm.expectRevert(closedErr);
        channels.extend(key, expiresAt + 1);
        vm.stopPrank();
    }

    function test_reclaim() public {
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(id, 4e18, 1);
        vm.prank(payee);
        channels.claim(key, 4e18, 1, v);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotExpired.selector, id, expiresAt)
        );
        vm.prank(payer);
        channels.reclaim(key);
        vm.warp(expiresAt);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsNotPayer.selector, id, payee));
        vm.prank(payee);
        channels.reclaim(key);
        vm.expectEmit(address(channels));
        emit IChargingChannels.ChannelClosed(id, 6e18);
        vm.prank(payer);
        channels.reclaim(key);
        assertEq(token.balanceOf(payer), 996e18);
        assertEq(token.balanceOf(address(channels)), 0);
        assertTrue(channels.channel(id).closed);
        // The payee's late voucher no longer pays.
        bytes memory late = _voucher(id, 9e18, 2);
        vm.expectRevert(abi.encodeWithSelector(IChargingChannels.ChargingChannelsChannelClosed.selector, id));
        vm.prank(payee);
        channels.claim(key, 9e18, 2, late);
    }

    // ------------------------------------------------------------ EIP-712

    function test_voucherDigest_isEip712() public view {
        bytes32 typeHash = keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)");
        assertEq(channels.VOUCHER_TYPEHASH(), typeHash);
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Carchain"),
                keccak256("1"),
                block.chainid,
                address(channels)
            )
        );
        bytes32 structHash = keccak256(abi.encode(typeHash, bytes32(uint256(7)), uint256(5), uint64(9)));
        assertEq(
            channels.voucherDigest(bytes32(uint256(7)), 5, 9),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash))
        );
        (, string memory name, string memory version, uint256 chainId, address verifying,,) = channels.eip712Domain();
        assertEq(name, "Carchain");
        assertEq(version, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(channels));
    }

    // ------------------------------------------------------------ fuzz

    function testFuzz_claimsPayExactlyTheNewestCumulative(uint96 deposit, uint256[5] memory steps) public {
        deposit = uint96(bound(deposit, 1, 1_000e18));
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(deposit, 0);
        uint256 cumulative;
        for (uint256 i; i < steps.length; ++i) {
            uint256 next = bound(steps[i], 0, deposit);
            bytes memory v = _voucher(id, next, uint64(i));
            if (next <= cumulative) {
                vm.expectRevert(
                    abi.encodeWithSelector(
                        IChargingChannels.ChargingChannelsVoucherNotIncreasing.selector, id, next, cumulative
                    )
                );
                vm.prank(payee);
                channels.claim(key, next, uint64(i), v);
                continue;
            }
            vm.prank(payee);
            channels.claim(key, next, uint64(i), v);
            cumulative = next;
            assertEq(token.balanceOf(payee), cumulative);
        }
        vm.prank(payee);
        channels.close(key, 0, 0, "");
        assertEq(token.balanceOf(payee) + token.balanceOf(payer), 1_000e18);
        assertEq(token.balanceOf(address(channels)), 0);
    }

    function testFuzz_onlyThePayersKeyPays(uint256 signerKey, uint256 amount) public {
        signerKey = bound(signerKey, 1, SECP256K1_N - 1);
        vm.assume(signerKey != payerKey);
        amount = bound(amount, 1, 10e18);
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(10e18, 0);
        bytes memory v = _voucher(signerKey, channels, id, amount, 1);
        vm.expectRevert(
            abi.encodeWithSelector(IChargingChannels.ChargingChannelsInvalidSignature.selector, id, vm.addr(signerKey))
        );
        vm.prank(payee);
        channels.claim(key, amount, 1, v);
    }

    function testFuzz_aboveDepositNeverPays(uint96 deposit, uint256 amount) public {
        deposit = uint96(bound(deposit, 1, 1_000e18));
        amount = bound(amount, uint256(deposit) + 1, type(uint256).max);
        (IChargingChannels.ChannelKey memory key, bytes32 id) = _open(deposit, 0);
        bytes memory v = _voucher(id, amount, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IChargingChannels.ChargingChannelsVoucherExceedsDeposit.selector, id, amount, uint256(deposit)
            )
        );
        vm.prank(payee);
        channels.claim(key, amount, 1, v);
    }

    /// @dev Whatever the key, the id is the ABI encoding's hash, as off-chain code computes it.
    function testFuzz_channelIdOf(address from, address to, address asset, uint256 nonce) public view {
        IChargingChannels.ChannelKey memory key =
            IChargingChannels.ChannelKey({payer: from, payee: to, token: asset, nonce: nonce});
        assertEq(channels.channelIdOf(key), keccak256(abi.encode(from, to, asset, nonce)));
    }
}
