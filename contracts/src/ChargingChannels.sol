// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IChargingChannels} from "./interfaces/IChargingChannels.sol";

/// @title ChargingChannels
/// @notice Metered charging over unidirectional payment channels: the car deposits once, signs a
///         voucher for the growing cumulative amount at each metered increment, and the charge-point
///         operator claims the newest voucher whenever it likes, over as many sessions as the deposit
///         lasts. The car reclaims what is left after expiry if the operator stops settling.
/// @dev Storage: one slot per channel, `{uint96 deposit, uint96 paid, uint64 expiresAt}`. The
///      payer, payee and token are not stored: the channel id is
///      `keccak256(abi.encode(payer, payee, token, nonce))` with the payer being `open`'s caller,
///      so a caller names them in a `ChannelKey`, the contract recomputes the id, and only the
///      parties and token the channel was opened with find its slot. Opening therefore writes one
///      fresh slot (22,100 gas) instead of three.
///      Trust model: the payee may claim until the channel is closed, even after `expiresAt`; the
///      payer's protection is that it can reclaim from `expiresAt` on, so a payee should settle
///      before expiry. Amounts are held as uint96 (≤ 2^96 - 1 base units, 7.9e10 tokens at 18
///      decimals). Tokens that charge fees on transfer or rebase are not supported: the contract
///      books the amounts it asked to move. Vouchers must come from an EOA key (ECDSA, 65 bytes,
///      low s), which is what a car's wallet is.
contract ChargingChannels is IChargingChannels, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type hash of `Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)`.
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)");

    /// @dev One slot. States:
    ///      - unknown: `deposit == 0` (open refuses a zero deposit and deposits only grow);
    ///      - open: `expiresAt != 0` (open and extend only accept a future, hence non-zero, expiry);
    ///      - closed: `deposit != 0 && expiresAt == 0`, keeping the final deposit and paid.
    ///      A closed channel's slot is never cleared: its id stays taken, so it can never be opened
    ///      again and none of its vouchers can ever pay again. Invariant: paid <= deposit.
    struct StoredChannel {
        uint96 deposit;
        uint96 paid;
        uint64 expiresAt;
    }

    mapping(bytes32 channelId => StoredChannel) private _channels;

    constructor() EIP712("Carchain", "1") {}

    // ---------------------------------------------------------------- opening and funding

    /// @inheritdoc IChargingChannels
    function open(address payee, address token, uint256 deposit, uint64 expiresAt, uint256 nonce)
        external
        nonReentrant
        returns (bytes32 channelId)
    {
        channelId = _open(payee, token, deposit, expiresAt, nonce);
    }

    /// @inheritdoc IChargingChannels
    function openWithPermit(
        address payee,
        address token,
        uint256 deposit,
        uint64 expiresAt,
        uint256 nonce,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (bytes32 channelId) {
        _permit(token, deposit, permitDeadline, v, r, s);
        channelId = _open(payee, token, deposit, expiresAt, nonce);
    }

    /// @inheritdoc IChargingChannels
    function topUp(ChannelKey calldata key, uint256 amount) external nonReentrant {
        _topUp(key, amount);
    }

    /// @inheritdoc IChargingChannels
    function topUpWithPermit(
        ChannelKey calldata key,
        uint256 amount,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant {
        _permit(key.token, amount, permitDeadline, v, r, s);
        _topUp(key, amount);
    }

    /// @inheritdoc IChargingChannels
    function extend(ChannelKey calldata key, uint64 expiresAt) external {
        (bytes32 channelId, StoredChannel memory c) = _openChannel(key);
        if (msg.sender != key.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        if (expiresAt <= c.expiresAt) revert ChargingChannelsInvalidExpiry(expiresAt);
        _channels[channelId].expiresAt = expiresAt;
        emit ChannelExtended(channelId, expiresAt);
    }

    // ---------------------------------------------------------------- settling

    /// @inheritdoc IChargingChannels
    function claim(ChannelKey calldata key, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external
        nonReentrant
    {
        (bytes32 channelId, StoredChannel memory c) = _openChannel(key);
        if (msg.sender != key.payee) revert ChargingChannelsNotPayee(channelId, msg.sender);
        uint256 payment = _settle(c, key.payer, channelId, cumulativeAmount, meterWh, signature);
        _channels[channelId].paid = c.paid;
        IERC20(key.token).safeTransfer(msg.sender, payment);
    }

    /// @inheritdoc IChargingChannels
    function close(ChannelKey calldata key, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external
        nonReentrant
    {
        (bytes32 channelId, StoredChannel memory c) = _openChannel(key);
        if (msg.sender != key.payee) revert ChargingChannelsNotPayee(channelId, msg.sender);
        uint256 payment;
        if (cumulativeAmount > c.paid) {
            payment = _settle(c, key.payer, channelId, cumulativeAmount, meterWh, signature);
        }
        uint256 refund = _finish(c, channelId);
        IERC20 token = IERC20(key.token);
        if (payment != 0) token.safeTransfer(msg.sender, payment);
        if (refund != 0) token.safeTransfer(key.payer, refund);
    }

    /// @inheritdoc IChargingChannels
    function reclaim(ChannelKey calldata key) external nonReentrant {
        (bytes32 channelId, StoredChannel memory c) = _openChannel(key);
        if (msg.sender != key.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        if (block.timestamp < c.expiresAt) revert ChargingChannelsNotExpired(channelId, c.expiresAt);
        uint256 refund = _finish(c, channelId);
        if (refund != 0) IERC20(key.token).safeTransfer(msg.sender, refund);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IChargingChannels
    function channel(bytes32 channelId) external view returns (Channel memory) {
        StoredChannel memory c = _channels[channelId];
        return Channel({
            deposit: c.deposit,
            paid: c.paid,
            expiresAt: c.expiresAt,
            closed: c.deposit != 0 && c.expiresAt == 0
        });
    }

    /// @inheritdoc IChargingChannels
    function channelIdOf(ChannelKey calldata key) public pure returns (bytes32) {
        return _channelId(key.payer, key.payee, key.token, key.nonce);
    }

    /// @inheritdoc IChargingChannels
    function voucherDigest(bytes32 channelId, uint256 cumulativeAmount, uint64 meterWh) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount, meterWh)));
    }

    // ---------------------------------------------------------------- internals

    function _channelId(address payer, address payee, address token, uint256 nonce) private pure returns (bytes32) {
        return keccak256(abi.encode(payer, payee, token, nonce));
    }

    function _open(address payee, address token, uint256 deposit, uint64 expiresAt, uint256 nonce)
        private
        returns (bytes32 channelId)
    {
        if (payee == address(0) || payee == msg.sender) revert ChargingChannelsInvalidPayee(payee);
        if (deposit == 0) revert ChargingChannelsZeroAmount();
        if (deposit > type(uint96).max) revert ChargingChannelsAmountTooLarge(deposit);
        if (expiresAt <= block.timestamp) revert ChargingChannelsInvalidExpiry(expiresAt);
        channelId = _channelId(msg.sender, payee, token, nonce);
        // Open or closed, an id is used once: a re-opened id would let the old vouchers pay again.
        if (_channels[channelId].deposit != 0) revert ChargingChannelsChannelExists(channelId);
        // forge-lint: disable-next-line(unsafe-typecast) — deposit <= type(uint96).max was checked above
        _channels[channelId] = StoredChannel({deposit: uint96(deposit), paid: 0, expiresAt: expiresAt});
        emit ChannelOpened(channelId, msg.sender, payee, token, deposit, expiresAt);
        // Pulls last (checks-effects-interactions); a token that takes no funds reverts here.
        IERC20(token).safeTransferFrom(msg.sender, address(this), deposit);
    }

    function _topUp(ChannelKey calldata key, uint256 amount) private {
        (bytes32 channelId, StoredChannel memory c) = _openChannel(key);
        if (msg.sender != key.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        if (amount == 0) revert ChargingChannelsZeroAmount();
        if (amount > type(uint96).max) revert ChargingChannelsAmountTooLarge(amount);
        uint256 deposit;
        // unchecked: both terms are below 2^96.
        unchecked {
            deposit = c.deposit + amount;
        }
        if (deposit > type(uint96).max) revert ChargingChannelsAmountTooLarge(deposit);
        // forge-lint: disable-next-line(unsafe-typecast) — checked against type(uint96).max just above
        _channels[channelId].deposit = uint96(deposit);
        emit ChannelToppedUp(channelId, amount, deposit);
        IERC20(key.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @dev Checks a voucher and books it in `c` (the caller writes `c.paid` back); returns what to
    ///      pay the payee now. Caller checked the channel is open and the sender is its payee.
    function _settle(
        StoredChannel memory c,
        address payer,
        bytes32 channelId,
        uint256 cumulativeAmount,
        uint64 meterWh,
        bytes calldata signature
    ) private returns (uint256 payment) {
        uint256 paid = c.paid;
        if (cumulativeAmount <= paid) revert ChargingChannelsVoucherNotIncreasing(channelId, cumulativeAmount, paid);
        uint256 deposit = c.deposit;
        if (cumulativeAmount > deposit) {
            revert ChargingChannelsVoucherExceedsDeposit(channelId, cumulativeAmount, deposit);
        }
        // Low-s, v in {27, 28}, 65 bytes (OZ ECDSA); any failure recovers to zero, never the payer
        // (the payer is `open`'s caller, never zero).
        (address signer,,) =
            ECDSA.tryRecoverCalldata(voucherDigest(channelId, cumulativeAmount, meterWh), signature);
        if (signer != payer) revert ChargingChannelsInvalidSignature(channelId, signer);
        // forge-lint: disable-next-line(unsafe-typecast) — cumulativeAmount <= deposit < 2^96 (checked above)
        c.paid = uint96(cumulativeAmount);
        // unchecked: cumulativeAmount > paid was checked above.
        unchecked {
            payment = cumulativeAmount - paid;
        }
        emit Claimed(channelId, cumulativeAmount, payment);
    }

    /// @dev Closes the channel (writes `c` back, with what it settled and a zero expiry) and
    ///      returns the refund owed to the payer.
    function _finish(StoredChannel memory c, bytes32 channelId) private returns (uint256 refund) {
        c.expiresAt = 0;
        _channels[channelId] = c;
        // unchecked: paid <= deposit always holds (_settle caps paid at deposit; deposits only grow).
        unchecked {
            refund = uint256(c.deposit) - c.paid;
        }
        emit ChannelClosed(channelId, refund);
    }

    /// @dev The id of `key` and its open channel, or a revert saying why not.
    function _openChannel(ChannelKey calldata key) private view returns (bytes32 channelId, StoredChannel memory c) {
        channelId = _channelId(key.payer, key.payee, key.token, key.nonce);
        c = _channels[channelId];
        if (c.deposit == 0) revert ChargingChannelsUnknownChannel(channelId);
        if (c.expiresAt == 0) revert ChargingChannelsChannelClosed(channelId);
    }

    /// @dev EIP-2612 permit for `value` to this contract. Failure is tolerated: someone may have
    ///      submitted the same permit first (front-running grief); the transfer then checks the
    ///      allowance, and reverts with the token's own error if it is missing. A low-level call,
    ///      not try/catch, so a token without code also falls through to SafeERC20's clear error.
    function _permit(address token, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) private {
        (bool ok,) =
            token.call(abi.encodeCall(IERC20Permit.permit, (msg.sender, address(this), value, deadline, v, r, s)));
        ok; // the outcome is checked by the transfer that follows
    }
}
