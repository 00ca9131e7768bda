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
/// @dev Trust model: the payee may claim until the channel is closed, even after `expiresAt`; the
///      payer's protection is that it can reclaim from `expiresAt` on, so a payee should settle
///      before expiry. Amounts are held as uint96 (≤ 2^96 - 1 base units, 7.9e10 tokens at 18
///      decimals) so a channel fits three storage slots. Tokens that charge fees on transfer or
///      rebase are not supported: the contract books the amounts it asked to move.
///      Vouchers must come from an EOA key (ECDSA, 65 bytes, low s), which is what a car's
///      wallet is.
contract ChargingChannels is IChargingChannels, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type hash of `Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)`.
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)");

    /// @dev Three slots. Invariant: paid <= deposit; once closed, nothing changes.
    struct StoredChannel {
        address payer;
        uint64 expiresAt;
        bool closed;
        address payee;
        uint96 deposit;
        address token;
        uint96 paid;
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
    function topUp(bytes32 channelId, uint256 amount) external nonReentrant {
        _topUp(channelId, amount);
    }

    /// @inheritdoc IChargingChannels
    function topUpWithPermit(bytes32 channelId, uint256 amount, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
    {
        _permit(_openChannel(channelId).token, amount, permitDeadline, v, r, s);
        _topUp(channelId, amount);
    }

    /// @inheritdoc IChargingChannels
    function extend(bytes32 channelId, uint64 expiresAt) external {
        StoredChannel storage stored = _openChannel(channelId);
        if (msg.sender != stored.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        if (expiresAt <= stored.expiresAt) revert ChargingChannelsInvalidExpiry(expiresAt);
        stored.expiresAt = expiresAt;
        emit ChannelExtended(channelId, expiresAt);
    }

    // ---------------------------------------------------------------- settling

    /// @inheritdoc IChargingChannels
    function claim(bytes32 channelId, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external
        nonReentrant
    {
        StoredChannel storage stored = _openChannel(channelId);
        if (msg.sender != stored.payee) revert ChargingChannelsNotPayee(channelId, msg.sender);
        uint256 payment = _settle(stored, channelId, cumulativeAmount, meterWh, signature);
        IERC20(stored.token).safeTransfer(msg.sender, payment);
    }

    /// @inheritdoc IChargingChannels
    function close(bytes32 channelId, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external
        nonReentrant
    {
        StoredChannel storage stored = _openChannel(channelId);
        if (msg.sender != stored.payee) revert ChargingChannelsNotPayee(channelId, msg.sender);
        uint256 payment;
        if (cumulativeAmount > stored.paid) payment = _settle(stored, channelId, cumulativeAmount, meterWh, signature);
        uint256 refund = _finish(stored, channelId);
        IERC20 token = IERC20(stored.token);
        if (payment != 0) token.safeTransfer(msg.sender, payment);
        if (refund != 0) token.safeTransfer(stored.payer, refund);
    }

    /// @inheritdoc IChargingChannels
    function reclaim(bytes32 channelId) external nonReentrant {
        StoredChannel storage stored = _openChannel(channelId);
        if (msg.sender != stored.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        uint64 expiresAt = stored.expiresAt;
        if (block.timestamp < expiresAt) revert ChargingChannelsNotExpired(channelId, expiresAt);
        uint256 refund = _finish(stored, channelId);
        if (refund != 0) IERC20(stored.token).safeTransfer(msg.sender, refund);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IChargingChannels
    function channel(bytes32 channelId) external view returns (Channel memory) {
        StoredChannel storage stored = _channels[channelId];
        return Channel({
            payer: stored.payer,
            payee: stored.payee,
            token: stored.token,
            deposit: stored.deposit,
            paid: stored.paid,
            expiresAt: stored.expiresAt,
            closed: stored.closed
        });
    }

    /// @inheritdoc IChargingChannels
    function channelIdOf(address payer, address payee, address token, uint256 nonce) public pure returns (bytes32) {
        return keccak256(abi.encode(payer, payee, token, nonce));
    }

    /// @inheritdoc IChargingChannels
    function voucherDigest(bytes32 channelId, uint256 cumulativeAmount, uint64 meterWh) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount, meterWh)));
    }

    // ---------------------------------------------------------------- internals

    function _open(address payee, address token, uint256 deposit, uint64 expiresAt, uint256 nonce)
        private
        returns (bytes32 channelId)
    {
        if (payee == address(0) || payee == msg.sender) revert ChargingChannelsInvalidPayee(payee);
        if (deposit == 0) revert ChargingChannelsZeroAmount();
        if (deposit > type(uint96).max) revert ChargingChannelsAmountTooLarge(deposit);
        if (expiresAt <= block.timestamp) revert ChargingChannelsInvalidExpiry(expiresAt);
        channelId = channelIdOf(msg.sender, payee, token, nonce);
        StoredChannel storage stored = _channels[channelId];
        if (stored.payer != address(0)) revert ChargingChannelsChannelExists(channelId);
        stored.payer = msg.sender;
        stored.expiresAt = expiresAt;
        stored.payee = payee;
        // forge-lint: disable-next-line(unsafe-typecast) — deposit <= type(uint96).max was checked above
        stored.deposit = uint96(deposit);
        stored.token = token;
        emit ChannelOpened(channelId, msg.sender, payee, token, deposit, expiresAt);
        // Pulls last (checks-effects-interactions); a token that takes no funds reverts here.
        IERC20(token).safeTransferFrom(msg.sender, address(this), deposit);
    }

    function _topUp(bytes32 channelId, uint256 amount) private {
        StoredChannel storage stored = _openChannel(channelId);
        if (msg.sender != stored.payer) revert ChargingChannelsNotPayer(channelId, msg.sender);
        if (amount == 0) revert ChargingChannelsZeroAmount();
        if (amount > type(uint96).max) revert ChargingChannelsAmountTooLarge(amount);
        uint256 deposit;
        // unchecked: both terms are below 2^96.
        unchecked {
            deposit = stored.deposit + amount;
        }
        if (deposit > type(uint96).max) revert ChargingChannelsAmountTooLarge(deposit);
        // forge-lint: disable-next-line(unsafe-typecast) — checked against type(uint96).max just above
        stored.deposit = uint96(deposit);
        emit ChannelToppedUp(channelId, amount, deposit);
        IERC20(stored.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @dev Checks a voucher and books it; returns what to pay the payee now. Caller checked
    ///      the channel is open and the sender is its payee.
    function _settle(
        StoredChannel storage stored,
        bytes32 channelId,
        uint256 cumulativeAmount,
        uint64 meterWh,
        bytes calldata signature
    ) private returns (uint256 payment) {
        uint256 paid = stored.paid;
        if (cumulativeAmount <= paid) revert ChargingChannelsVoucherNotIncreasing(channelId, cumulativeAmount, paid);
        uint256 deposit = stored.deposit;
        if (cumulativeAmount > deposit) {
            revert ChargingChannelsVoucherExceedsDeposit(channelId, cumulativeAmount, deposit);
        }
        // Low-s, v in {27, 28}, 65 bytes (OZ ECDSA); any failure recovers to zero, never the payer.
        (address signer,,) =
            ECDSA.tryRecoverCalldata(voucherDigest(channelId, cumulativeAmount, meterWh), signature);
        if (signer != stored.payer) revert ChargingChannelsInvalidSignature(channelId, signer);
        // forge-lint: disable-next-line(unsafe-typecast) — cumulativeAmount <= deposit < 2^96 (checked above)
        stored.paid = uint96(cumulativeAmount);
        // unchecked: cumulativeAmount > paid was checked above.
        unchecked {
            payment = cumulativeAmount - paid;
        }
        emit Claimed(channelId, cumulativeAmount, payment);
    }

    /// @dev Closes the channel and returns the refund owed to the payer.
    function _finish(StoredChannel storage stored, bytes32 channelId) private returns (uint256 refund) {
        stored.closed = true;
        // unchecked: paid <= deposit always holds (_settle caps paid at deposit; deposits only grow).
        unchecked {
            refund = uint256(stored.deposit) - stored.paid;
        }
        emit ChannelClosed(channelId, refund);
    }

    /// @dev The open channel `channelId`, or a revert saying why not.
    function _openChannel(bytes32 channelId) private view returns (StoredChannel storage stored) {
        stored = _channels[channelId];
        if (stored.payer == address(0)) revert ChargingChannelsUnknownChannel(channelId);
        if (stored.closed) revert ChargingChannelsChannelClosed(channelId);
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
