// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IVehicleRegistry} from "./interfaces/IVehicleRegistry.sol";
import {IERC4907} from "./interfaces/IERC4907.sol";
import {KeyRegistry} from "./KeyRegistry.sol";
import {IKeyRegistry} from "./interfaces/IKeyRegistry.sol";

/// @title VehicleRegistry
/// @notice The on-chain half of Carchain's PKI and the vehicle's title.
///         - The admin (`owner()`, two-step transfer) trusts root certificate fingerprints per role
///           and registers OEM and CPO accounts.
///         - A registered OEM registers a vehicle and mints its title, an ERC-721 token whose id is
///           the vehicle's address as uint160. `ownerOf` is the owner; an approved operator
///           (`setApprovalForAll`, or `approve` for one title) is a manager; a sale is a transfer.
///         - ERC-4907 `setUser` rents the vehicle out until an expiry; a transfer clears the user.
///         - A registered CPO registers chargers.
///         - The admin or the issuing OEM/CPO revokes certificates; revocation is permanent and
///           keyed by fingerprint, so a vehicle or charger is revoked exactly when its
///           certificate's fingerprint is (whoever revoked it).
/// @dev Every state change emits an event so an indexer can rebuild the whole state from logs.
contract VehicleRegistry is ERC721, Ownable2Step, IVehicleRegistry, IERC4907, KeyRegistry {
    struct UserInfo {
        address user;
        uint64 expires;
    }

    mapping(uint8 role => mapping(bytes32 fingerprint => bool)) private _trustedRoots;
    mapping(address account => bool) private _oems;
    mapping(address account => bool) private _cpos;
    mapping(address vehicle => Vehicle) private _vehicles;
    mapping(address charger => Charger) private _chargers;
    mapping(bytes32 fingerprint => bool) private _revokedCerts;
    mapping(uint256 tokenId => UserInfo) private _users;

    /// @param admin The account that governs roots, OEMs and CPOs.
    constructor(address admin) ERC721("Carchain Vehicle Title", "CVT") Ownable(admin) {}

    // ---------------------------------------------------------------- admin

    /// @inheritdoc IVehicleRegistry
    function setTrustedRoot(uint8 role, bytes32 fingerprint, bool trusted) external onlyOwner {
        if (role > uint8(Role.CPO)) revert VehicleRegistryInvalidRole(role);
        if (fingerprint == bytes32(0)) revert VehicleRegistryZeroFingerprint();
        _trustedRoots[role][fingerprint] = trusted;
        emit TrustedRootSet(role, fingerprint, trusted);
    }

    /// @inheritdoc IVehicleRegistry
    function setOem(address oem, bool registered) external onlyOwner {
        if (oem == address(0)) revert VehicleRegistryZeroAddress();
        _oems[oem] = registered;
        emit OemSet(oem, registered);
    }

    /// @inheritdoc IVehicleRegistry
    function setCpo(address cpo, bool registered) external onlyOwner {
        if (cpo == address(0)) revert VehicleRegistryZeroAddress();
        _cpos[cpo] = registered;
        emit CpoSet(cpo, registered);
    }

    /// @inheritdoc IVehicleRegistry
    function revokeCertificate(bytes32 fingerprint) external onlyOwner {
        _revokeFingerprint(fingerprint, address(0));
    }

    // ---------------------------------------------------------------- registration

    /// @inheritdoc IVehicleRegistry
    function registerVehicle(address vehicle, address owner, bytes32 certFingerprint, bytes32 vinHash) external {
        if (!_oems[msg.sender]) revert VehicleRegistryNotOem(msg.sender);
        _checkNewSubject(vehicle, certFingerprint);
        // `revoked` is derived from `_revokedCerts` on read; the stored flag stays false.
        _vehicles[vehicle] =
            Vehicle({certFingerprint: certFingerprint, vinHash: vinHash, oem: msg.sender, revoked: false});
        // `_mint`, not `_safeMint`: the OEM chooses the owner, and a fleet contract that does not
        // implement IERC721Receiver must still be able to hold titles. Reverts on a zero owner.
        _mint(owner, uint256(uint160(vehicle)));
        emit VehicleRegistered(vehicle, owner, msg.sender, certFingerprint, vinHash);
    }

    /// @inheritdoc IVehicleRegistry
    function registerCharger(address charger, bytes32 certFingerprint, bytes32 evseIdHash) external {
        if (!_cpos[msg.sender]) revert VehicleRegistryNotCpo(msg.sender);
        _checkNewSubject(charger, certFingerprint);
        _chargers[charger] =
            Charger({certFingerprint: certFingerprint, evseIdHash: evseIdHash, cpo: msg.sender, revoked: false});
        emit ChargerRegistered(charger, msg.sender, certFingerprint, evseIdHash);
    }

    // ---------------------------------------------------------------- revocation

    /// @inheritdoc IVehicleRegistry
    function revokeVehicle(address vehicle) external {
        Vehicle storage record = _vehicles[vehicle];
        address oem = record.oem;
        if (oem == address(0)) revert VehicleRegistryUnknownVehicle(vehicle);
        if (msg.sender != owner() && !(msg.sender == oem && _oems[msg.sender])) {
            revert VehicleRegistryUnauthorizedRevoker(vehicle, msg.sender);
        }
        _revokeFingerprint(record.certFingerprint, vehicle);
    }

    /// @inheritdoc IVehicleRegistry
    function revokeCharger(address charger) external {
        Charger storage record = _chargers[charger];
        address cpo = record.cpo;
        if (cpo == address(0)) revert VehicleRegistryUnknownCharger(charger);
        if (msg.sender != owner() && !(msg.sender == cpo && _cpos[msg.sender])) {
            revert VehicleRegistryUnauthorizedRevoker(charger, msg.sender);
        }
        _revokeFingerprint(record.certFingerprint, charger);
    }

    // ---------------------------------------------------------------- ERC-4907 rentals

    /// @notice Rents the vehicle `tokenId` to `user` until `expires` (unix seconds); zero user ends it.
    /// @dev Owner or approved (a manager) only, as in EIP-4907. The car honours the user without a key.
    function setUser(uint256 tokenId, address user, uint64 expires) external {
        address tokenOwner = _requireOwned(tokenId);
        if (!_isAuthorized(tokenOwner, msg.sender, tokenId)) {
            revert VehicleRegistryNotOwnerOrApproved(tokenId, msg.sender);
        }
        _users[tokenId] = UserInfo({user: user, expires: expires});
        emit UpdateUser(tokenId, user, expires);
    }

    /// @notice The renter of `tokenId`, or zero when there is none or the rental has expired.
    function userOf(uint256 tokenId) external view returns (address) {
        UserInfo memory info = _users[tokenId];
        return info.expires >= block.timestamp ? info.user : address(0);
    }

    /// @notice The rental expiry of `tokenId` (unix seconds), 0 when none was set.
    function userExpires(uint256 tokenId) external view returns (uint256) {
        return _users[tokenId].expires;
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IVehicleRegistry
    function isTrustedRoot(uint8 role, bytes32 fingerprint) external view returns (bool) {
        return _trustedRoots[role][fingerprint];
    }

    /// @inheritdoc IVehicleRegistry
    function isOem(address account) external view returns (bool) {
        return _oems[account];
    }

    /// @inheritdoc IVehicleRegistry
    function isCpo(address account) external view returns (bool) {
        return _cpos[account];
    }

    /// @inheritdoc IVehicleRegistry
    function isRegistered(address vehicle) external view returns (bool) {
        return _vehicles[vehicle].oem != address(0);
    }

    /// @inheritdoc IVehicleRegistry
    function vehicleOf(address vehicle) external view returns (Vehicle memory record) {
        record = _vehicles[vehicle];
        record.revoked = _revokedCerts[record.certFingerprint];
    }

    /// @inheritdoc IVehicleRegistry
    function certFingerprintOf(address vehicle) external view returns (bytes32) {
        return _vehicles[vehicle].certFingerprint;
    }

    /// @inheritdoc IVehicleRegistry
    function vinHashOf(address vehicle) external view returns (bytes32) {
        return _vehicles[vehicle].vinHash;
    }

    /// @inheritdoc IVehicleRegistry
    function oemOf(address vehicle) external view returns (address) {
        return _vehicles[vehicle].oem;
    }

    /// @inheritdoc IVehicleRegistry
    function chargerOf(address charger) external view returns (Charger memory record) {
        record = _chargers[charger];
        record.revoked = _revokedCerts[record.certFingerprint];
    }

    /// @inheritdoc IVehicleRegistry
    function isChargerActive(address charger) external view returns (bool) {
        Charger storage record = _chargers[charger];
        return record.cpo != address(0) && !_revokedCerts[record.certFingerprint] && _cpos[record.cpo];
    }

    /// @inheritdoc IVehicleRegistry
    function isSubjectRevoked(address subject) external view returns (bool) {
        // A registered subject's fingerprint is never zero, and zero is never revoked.
        bytes32 fingerprint = _vehicles[subject].certFingerprint;
        if (fingerprint == bytes32(0)) fingerprint = _chargers[subject].certFingerprint;
        return _revokedCerts[fingerprint];
    }

    /// @inheritdoc IVehicleRegistry
    function isCertRevoked(bytes32 fingerprint) external view returns (bool) {
        return _revokedCerts[fingerprint];
    }

    /// @inheritdoc IVehicleRegistry
    function isOwnerOrManager(address vehicle, address account) external view returns (bool) {
        return _isOwnerOrManager(vehicle, account);
    }

    /// @notice ERC-165: ERC-721, ERC-721 Metadata, ERC-4907 (0xad092b5c), IKeyRegistry.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IERC4907).interfaceId || interfaceId == type(IKeyRegistry).interfaceId
            || super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- internals

    /// @dev KeyRegistry's authority: the title owner, an operator it approved for all its titles,
    ///      or the account approved for this title.
    function _isOwnerOrManager(address vehicle, address account) internal view override returns (bool) {
        uint256 tokenId = uint256(uint160(vehicle));
        address tokenOwner = _ownerOf(tokenId);
        if (tokenOwner == address(0) || account == address(0)) return false;
        // Cheapest check first: every revocation asks, mostly by the owner.
        return account == tokenOwner || isApprovedForAll(tokenOwner, account) || _getApproved(tokenId) == account;
    }

    /// @dev EIP-4907: a change of owner ends the rental.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != to && _users[tokenId].user != address(0)) {
            delete _users[tokenId];
            emit UpdateUser(tokenId, address(0), 0);
        }
    }

    function _checkNewSubject(address subject, bytes32 certFingerprint) private view {
        if (subject == address(0)) revert VehicleRegistryZeroAddress();
        if (certFingerprint == bytes32(0)) revert VehicleRegistryZeroFingerprint();
        if (_vehicles[subject].oem != address(0) || _chargers[subject].cpo != address(0)) {
            revert VehicleRegistryAlreadyRegistered(subject);
        }
        if (_revokedCerts[certFingerprint]) revert VehicleRegistryCertificateRevoked(certFingerprint);
    }

    function _revokeFingerprint(bytes32 fingerprint, address subject) private {
        if (fingerprint == bytes32(0)) revert VehicleRegistryZeroFingerprint();
        if (_revokedCerts[fingerprint]) revert VehicleRegistryCertificateRevoked(fingerprint);
        _revokedCerts[fingerprint] = true;
        emit CertificateRevoked(fingerprint, subject, msg.sender);
    }
}
