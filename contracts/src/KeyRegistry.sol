// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IKeyRegistry} from "./interfaces/IKeyRegistry.sol";

/// @title KeyRegistry
/// @notice Where owners and managers revoke digital keys, for cars to sync when online (docs/spec.md
///         "Digital keys"). A grant is checked offline by the car; this contract only records
///         revocations: one grant (`revoke`) or all grants at once (`revokeAll` bumps the epoch,
///         and a grant is valid only while its `epoch` equals `epochOf(vehicle)`).
/// @dev Abstract: it is deployed as part of the contract that holds the titles (VehicleRegistry),
///      which answers `_isOwnerOrManager`. Keeping revocations beside the titles saves every
///      revocation a call to another contract (a cold account, 2,600 gas, plus the call's own
///      cost, ~3,100 gas of a ~52,400-gas `revoke`), which is what brings `revoke` under 50,000
///      gas (docs/contracts.md "KeyRegistry lives in VehicleRegistry").
///      A sale voids the old owner's grants without any call here: the car accepts a grant only
///      when its signer is the *current* title owner or one of its managers, so after a transfer
///      every grant the old owner signed fails that check. The epoch is not bumped on transfer,
///      so the new owner's grants may name any epoch it reads.
abstract contract KeyRegistry is IKeyRegistry {
    mapping(address vehicle => uint64) private _epochs;
    mapping(address vehicle => mapping(bytes32 grantId => bool)) private _revoked;

    /// @inheritdoc IKeyRegistry
    function revoke(address vehicle, bytes32 grantId) external {
        _checkOwnerOrManager(vehicle);
        mapping(bytes32 => bool) storage revoked = _revoked[vehicle];
        if (revoked[grantId]) revert KeyRegistryAlreadyRevoked(vehicle, grantId);
        revoked[grantId] = true;
        emit GrantRevoked(vehicle, grantId, msg.sender);
    }

    /// @inheritdoc IKeyRegistry
    function revokeAll(address vehicle) external {
        _checkOwnerOrManager(vehicle);
        uint64 epoch;
        // unchecked: one bump per transaction cannot reach 2^64 - 1 in any chain's lifetime.
        unchecked {
            epoch = _epochs[vehicle] + 1;
        }
        _epochs[vehicle] = epoch;
        emit EpochBumped(vehicle, epoch, msg.sender);
    }

    /// @inheritdoc IKeyRegistry
    function epochOf(address vehicle) external view returns (uint64) {
        return _epochs[vehicle];
    }

    /// @inheritdoc IKeyRegistry
    function isRevoked(address vehicle, bytes32 grantId) external view returns (bool) {
        return _revoked[vehicle][grantId];
    }

    /// @dev Whether `account` is the title owner of `vehicle` or one of its managers.
    function _isOwnerOrManager(address vehicle, address account) internal view virtual returns (bool);

    function _checkOwnerOrManager(address vehicle) private view {
        if (!_isOwnerOrManager(vehicle, msg.sender)) revert KeyRegistryUnauthorized(vehicle, msg.sender);
    }
}
