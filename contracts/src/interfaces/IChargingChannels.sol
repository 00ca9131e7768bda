// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IChargingChannels
/// @notice Unidirectional ERC-20 payment channels from a payer (a car's wallet) to a payee (a
///         charge-point operator), settled with the payer's EIP-712 vouchers for a growing
///         cumulative amount (docs/spec.md "Payments and charging").
/// @dev The contract stores one slot per channel (amounts and expiry); the parties and the token
///      are committed to by the channel id, `keccak256(abi.encode(payer, payee, token, nonce))`,
///      so every call on an existing channel names them in a `ChannelKey` and the contract
///      recomputes the id from it.
interface IChargingChannels {
    /// @notice What identifies a channel; `channelIdOf(key)` is its id.
    /// @param payer Who deposited and signs vouchers; receives the refund.
    /// @param payee Who claims with vouchers.
    /// @param token The ERC-20 the channel holds.
    /// @param nonce Any value the payer had not used with this payee and token.
    struct ChannelKey {
        address payer;
        address payee;
        address token;
        uint256 nonce;
    }

    /// @notice A channel's state as `channel(channelId)` returns it; all zero when unknown.
    /// @param deposit Everything the payer has put in (opening deposit plus top-ups), base units;
    ///        never zero for a channel that was opened.
    /// @param paid What the payee has been paid so far: the highest cumulative amount claimed.
    /// @param expiresAt Unix seconds from which the payer may reclaim what is left; zero once closed.
    /// @param closed Whether the channel is settled for good (by `close` or `reclaim`).
    struct Channel {
        uint256 deposit;
        uint256 paid;
        uint64 expiresAt;
        bool closed;
    }

    /// @notice `payer` opened a channel to `payee` with `deposit` of `token`.
    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        uint256 deposit,
        uint64 expiresAt
    );
    /// @notice The payer added `amount`; the channel now holds a total `deposit`.
    event ChannelToppedUp(bytes32 indexed channelId, uint256 amount, uint256 deposit);
    /// @notice The payer moved the expiry to `expiresAt`.
    event ChannelExtended(bytes32 indexed channelId, uint64 expiresAt);
    /// @notice The payee claimed up to `cumulativeAmount`, receiving `paid` now.
    event Claimed(bytes32 indexed channelId, uint256 cumulativeAmount, uint256 paid);
    /// @notice The channel is settled; the payer got `refunded` back.
    event ChannelClosed(bytes32 indexed channelId, uint256 refunded);

    /// @notice No channel has id `channelId` (nothing was opened with that key).
    error ChargingChannelsUnknownChannel(bytes32 channelId);
    /// @notice A channel with id `channelId` exists already, open or closed (pick another nonce).
    error ChargingChannelsChannelExists(bytes32 channelId);
    /// @notice The channel `channelId` is closed.
    error ChargingChannelsChannelClosed(bytes32 channelId);
    /// @notice `caller` is not the payer of `channelId`.
    error ChargingChannelsNotPayer(bytes32 channelId, address caller);
    /// @notice `caller` is not the payee of `channelId`.
    error ChargingChannelsNotPayee(bytes32 channelId, address caller);
    /// @notice The payee is zero or the payer itself.
    error ChargingChannelsInvalidPayee(address payee);
    /// @notice An amount (deposit or top-up) is zero.
    error ChargingChannelsZeroAmount();
    /// @notice A channel's deposit would exceed 2^96 - 1 base units.
    error ChargingChannelsAmountTooLarge(uint256 amount);
    /// @notice `expiresAt` is not in the future (open) or not later than the current expiry (extend).
    error ChargingChannelsInvalidExpiry(uint64 expiresAt);
    /// @notice The payer may reclaim only from `expiresAt` on.
    error ChargingChannelsNotExpired(bytes32 channelId, uint64 expiresAt);
    /// @notice The voucher's `cumulativeAmount` does not exceed what was already `paid` (stale or replayed).
    error ChargingChannelsVoucherNotIncreasing(bytes32 channelId, uint256 cumulativeAmount, uint256 paid);
    /// @notice The voucher's `cumulativeAmount` exceeds the channel's `deposit`.
    error ChargingChannelsVoucherExceedsDeposit(bytes32 channelId, uint256 cumulativeAmount, uint256 deposit);
    /// @notice The voucher signature is malformed, malleable (high s) or not the payer's; `signer` is
    ///         what it recovers to (zero when it recovers to nothing).
    error ChargingChannelsInvalidSignature(bytes32 channelId, address signer);

    /// @notice Opens a channel from the caller to `payee`, pulling `deposit` of `token` with a prior
    ///         ERC-20 approval. `nonce` is any value the caller has not used with this payee and token.
    /// @return channelId `channelIdOf(ChannelKey(msg.sender, payee, token, nonce))`.
    function open(address payee, address token, uint256 deposit, uint64 expiresAt, uint256 nonce)
        external
        returns (bytes32 channelId);

    /// @notice `open` with an EIP-2612 permit (value = `deposit`, spender = this contract) instead of
    ///         a prior approval: one transaction. A permit that fails (e.g. already used by a
    ///         front-runner) is ignored when the allowance is there anyway.
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
    ) external returns (bytes32 channelId);

    /// @notice Adds `amount` to the deposit of an open channel. Payer only; needs an approval.
    function topUp(ChannelKey calldata key, uint256 amount) external;

    /// @notice `topUp` with an EIP-2612 permit for `amount`. Payer only.
    function topUpWithPermit(
        ChannelKey calldata key,
        uint256 amount,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external;

    /// @notice Pays the payee `cumulativeAmount` minus what it was already paid, against the payer's
    ///         EIP-712 `Voucher(bytes32 channelId,uint256 cumulativeAmount,uint64 meterWh)` signature
    ///         (65 bytes, low s) with `channelId = channelIdOf(key)`. Payee only, any number of
    ///         times while the channel is not closed.
    function claim(ChannelKey calldata key, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external;

    /// @notice Settles and closes: claims the voucher when `cumulativeAmount` exceeds what was paid
    ///         (pass 0 and an empty signature to settle nothing more), then refunds the rest to the
    ///         payer. Payee only.
    function close(ChannelKey calldata key, uint256 cumulativeAmount, uint64 meterWh, bytes calldata signature)
        external;

    /// @notice Refunds what the payee has not claimed and closes. Payer only, from `expiresAt` on.
    function reclaim(ChannelKey calldata key) external;

    /// @notice Moves the expiry of an open channel later, to `expiresAt`. Payer only.
    function extend(ChannelKey calldata key, uint64 expiresAt) external;

    /// @notice The state of channel `channelId` (all zero when unknown).
    function channel(bytes32 channelId) external view returns (Channel memory);

    /// @notice A channel's id: keccak256(abi.encode(payer, payee, token, nonce)).
    function channelIdOf(ChannelKey calldata key) external pure returns (bytes32);

    /// @notice The EIP-712 digest the payer signs for a voucher (domain "Carchain", version "1",
    ///         this chain, this contract).
    function voucherDigest(bytes32 channelId, uint256 cumulativeAmount, uint64 meterWh)
        external
        view
        returns (bytes32);
}
