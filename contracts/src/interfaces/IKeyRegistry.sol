// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IKeyRegistry
/// @notice Revocation of the digital keys (EIP-712 `KeyGrant`s) a vehicle's owner or manager signed.
interface IKeyRegistry {
    /// @notice `by` revoked the grant `grantId` of `vehicle`.
    event GrantRevoked(address indexed vehicle, bytes32 indexed grantId, address by);
    /// @notice `by` revoked every grant of `vehicle` signed for an earlier epoch; `epoch` is the new one.
    event EpochBumped(address indexed vehicle, uint64 epoch, address by);

    /// @notice `caller` is neither the title owner of `vehicle` nor a manager.
    error KeyRegistryUnauthorized(address vehicle, address caller);
    /// @notice The grant `grantId` of `vehicle` is already revoked.
    error KeyRegistryAlreadyRevoked(address vehicle, bytes32 grantId);

    /// @notice Revokes one grant of `vehicle`. Title owner or manager only.
    function revoke(address vehicle, bytes32 grantId) external;

    /// @notice Revokes every grant of `vehicle` by moving it to the next epoch. Title owner or manager only.
    function revokeAll(address vehicle) external;

    /// @notice The current key epoch of `vehicle`; a grant is valid only for the epoch it names.
    function epochOf(address vehicle) external view returns (uint64);

    /// @notice Whether the grant `grantId` of `vehicle` has been revoked.
    function isRevoked(address vehicle, bytes32 grantId) external view returns (bool);
}
