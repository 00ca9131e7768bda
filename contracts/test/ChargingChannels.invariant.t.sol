// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {ChargingChannels} from "../src/ChargingChannels.sol";
import {IChargingChannels} from "../src/interfaces/IChargingChannels.sol";
import {DemoToken} from "../src/DemoToken.sol";

/// @notice Drives ChargingChannels with random but well-formed actions of three cars and two
///         operators, and keeps ghost totals of what moved.
contract ChannelsHandler is Test {
    ChargingChannels public immutable channels;
    DemoToken public immutable token;

    uint256[3] private payerKeys = [uint256(0xA1), 0xA2, 0xA3];
    address[2] private payees = [address(0xB1), address(0xB2)];
    uint256 private constant FORGER_KEY = 0xF0F0;

    bytes32[] public ids;
    /// @dev What the handler needs to act on `ids[i]`: the contract stores only amounts and expiry.
    IChargingChannels.ChannelKey[] private keys;
    uint256 public totalDeposited;
    uint256 public totalPaid;
    uint256 public totalRefunded;
    bool public forgedVoucherPaid;
    bool public claimDecreased;
    bool public paidBeyondDeposit;
    bool public wrongKeyPaid;
    uint256 private nonce;

    constructor(ChargingChannels channels_) {
        channels = channels_;
        token = new DemoToken("Demo", "DEMO", address(this));
        for (uint256 i; i < payerKeys.length; ++i) {
            address payer = vm.addr(payerKeys[i]);
            token.mint(payer, 1_000_000e18);
            vm.prank(payer);
            token.approve(address(channels), type(uint256).max);
        }
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function payeeCount() external pure returns (uint256) {
        return 2;
    }

    function payeeAt(uint256 i) external view returns (address) {
        return payees[i];
    }

    function payerAt(uint256 i) external view returns (address) {
        return vm.addr(payerKeys[i]);
    }

    function open(uint256 payerSeed, uint256 payeeSeed, uint256 deposit, uint256 duration) external {
        address payer = vm.addr(payerKeys[payerSeed % payerKeys.length]);
        deposit = bound(deposit, 1, 10_000e18);
        uint64 expiresAt = uint64(block.timestamp + bound(duration, 1, 30 days));
        vm.prank(payer);
        address payee = payees[payeeSeed % payees.length];
        bytes32 id = channels.open(payee, address(token), deposit, expiresAt, nonce);
        ids.push(id);
        keys.push(IChargingChannels.ChannelKey({payer: payer, payee: payee, token: address(token), nonce: nonce++}));
        totalDeposited += deposit;
    }

    function topUp(uint256 idSeed, uint256 amount) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory c = channels.channel(id);
        if (c.closed) return;
        amount = bound(amount, 1, 1_000e18);
        vm.prank(key.payer);
        channels.topUp(key, amount);
        totalDeposited += amount;
    }

    /// @dev A genuine voucher from the payer, sometimes stale or beyond the deposit.
    function claim(uint256 idSeed, uint256 amount, uint64 meterWh) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory before = channels.channel(id);
        amount = bound(amount, 0, before.deposit + before.deposit / 5);
        bytes memory voucher = _sign(_keyOf(key.payer), id, amount, meterWh);
        vm.prank(key.payee);
        try channels.claim(key, amount, meterWh, voucher) {
            IChargingChannels.Channel memory afterwards = channels.channel(id);
            if (afterwards.paid <= before.paid) claimDecreased = true;
            if (afterwards.paid > afterwards.deposit) paidBeyondDeposit = true;
            totalPaid += afterwards.paid - before.paid;
        } catch {}
    }

    /// @dev A voucher signed by anyone but the payer must never pay.
    function claimForged(uint256 idSeed, uint256 amount) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory c = channels.channel(id);
        amount = bound(amount, 0, c.deposit);
        bytes memory voucher = _sign(FORGER_KEY, id, amount, 1);
        vm.prank(key.payee);
        try channels.claim(key, amount, 1, voucher) {
            forgedVoucherPaid = true;
        } catch {}
    }

    function close(uint256 idSeed, uint256 amount) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory before = channels.channel(id);
        if (before.closed) return;
        amount = bound(amount, 0, before.deposit);
        bytes memory voucher = _sign(_keyOf(key.payer), id, amount, 1);
        vm.prank(key.payee);
        channels.close(key, amount, 1, voucher);
        IChargingChannels.Channel memory afterwards = channels.channel(id);
        totalPaid += afterwards.paid - before.paid;
        totalRefunded += afterwards.deposit - afterwards.paid;
    }

    function reclaim(uint256 idSeed) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory c = channels.channel(id);
        if (c.closed) return;
        if (block.timestamp < c.expiresAt) vm.warp(c.expiresAt);
        vm.prank(key.payer);
        channels.reclaim(key);
        totalRefunded += c.deposit - c.paid;
    }

    function extend(uint256 idSeed, uint256 delta) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory c = channels.channel(id);
        if (c.closed) return;
        vm.prank(key.payer);
        channels.extend(key, c.expiresAt + uint64(bound(delta, 1, 30 days)));
    }

    /// @dev A voucher of a real payer, claimed with a key naming another payer, payee, token or
    ///      nonce than the channel was opened with, must never pay.
    function claimWithWrongKey(uint256 idSeed, uint256 amount, uint256 field) external {
        if (ids.length == 0) return;
        (bytes32 id, IChargingChannels.ChannelKey memory key) = _pick(idSeed);
        IChargingChannels.Channel memory c = channels.channel(id);
        amount = bound(amount, 0, c.deposit);
        field %= 4;
        if (field == 0) key.payer = _otherPayer(key.payer, idSeed);
        else if (field == 1) key.payee = key.payee == payees[0] ? payees[1] : payees[0];
        else if (field == 2) key.token = address(channels);
        else key.nonce = nonce + 1 + amount;
        // Signed for the real channel and for the id of the altered key alike.
        bytes memory forId = _sign(_keyOf(key.payer), id, amount, 1);
        bytes memory forKey = _sign(_keyOf(key.payer), channels.channelIdOf(key), amount, 1);
        vm.startPrank(key.payee);
        try channels.claim(key, amount, 1, forId) {
            wrongKeyPaid = true;
        } catch {}
        try channels.claim(key, amount, 1, forKey) {
            wrongKeyPaid = true;
        } catch {}
        vm.stopPrank();
    }

    /// @dev One of the handler's payers that is not `payer`.
    function _otherPayer(address payer, uint256 seed) private view returns (address other) {
        other = vm.addr(payerKeys[seed % payerKeys.length]);
        if (other == payer) other = vm.addr(payerKeys[(seed + 1) % payerKeys.length]);
    }

    function _pick(uint256 idSeed) private view returns (bytes32 id, IChargingChannels.ChannelKey memory key) {
        uint256 i = idSeed % ids.length;
        id = ids[i];
        key = keys[i];
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 10 days));
    }

    function _keyOf(address payer) private view returns (uint256) {
        for (uint256 i; i < payerKeys.length; ++i) {
            if (vm.addr(payerKeys[i]) == payer) return payerKeys[i];
        }
        return FORGER_KEY;
    }

    function _sign(uint256 key, bytes32 id, uint256 amount, uint64 meterWh) private view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, channels.voucherDigest(id, amount, meterWh));
        return abi.encodePacked(r, s, v);
    }
}

contract ChargingChannelsInvariantTest is Test {
    ChargingChannels private channels;
    DemoToken private token;
    ChannelsHandler private handler;

    function setUp() public {
        channels = new ChargingChannels();
        handler = new ChannelsHandler(channels);
        token = handler.token();
        targetContract(address(handler));
    }

    /// @dev Tokens are conserved: what went in is paid out, refunded, or still held.
    function invariant_tokensConserved() public view {
        assertEq(
            token.balanceOf(address(channels)),
            handler.totalDeposited() - handler.totalPaid() - handler.totalRefunded(),
            "held"
        );
        uint256 payeeBalances;
        for (uint256 i; i < handler.payeeCount(); ++i) payeeBalances += token.balanceOf(handler.payeeAt(i));
        assertEq(payeeBalances, handler.totalPaid(), "paid");
        uint256 payerBalances;
        for (uint256 i; i < 3; ++i) payerBalances += token.balanceOf(handler.payerAt(i));
        assertEq(payerBalances + payeeBalances + token.balanceOf(address(channels)), token.totalSupply(), "supply");
    }

    /// @dev No channel ever pays beyond its deposit, and a closed channel holds nothing.
    function invariant_paidWithinDeposit() public view {
        uint256 held;
        for (uint256 i; i < handler.idCount(); ++i) {
            IChargingChannels.Channel memory c = channels.channel(handler.ids(i));
            assertLe(c.paid, c.deposit);
            if (!c.closed) held += c.deposit - c.paid;
        }
        assertEq(held, token.balanceOf(address(channels)), "open channels hold the balance");
        assertFalse(handler.paidBeyondDeposit());
    }

    /// @dev Claims only move the cumulative amount up, only payer-signed vouchers pay, and only
    ///      with the key the channel was opened with.
    function invariant_claimsMonotonicAndAuthentic() public view {
        assertFalse(handler.claimDecreased());
        assertFalse(handler.forgedVoucherPaid());
        assertFalse(handler.wrongKeyPaid());
    }
}
