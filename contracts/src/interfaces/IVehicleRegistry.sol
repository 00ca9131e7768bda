// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IVehicleRegistry
/// @notice Trusted PKI roots, OEM and CPO accounts, vehicle titles (ERC-721, tokenId = uint160 of
///         the vehicle's address), chargers and certificate revocation.
interface IVehicleRegistry {
    /// @notice The PKI a root certificate anchors: OEM roots issue vehicle and component
    ///         certificates, CPO roots issue charger certificates. Passed as `uint8` in the ABI.
    enum Role {
        OEM,
        CPO
    }

    /// @notice A registered vehicle.
    /// @param certFingerprint SHA-256 of the vehicle certificate's DER encoding.
    /// @param vinHash A hash of the VIN (the registry never stores the VIN in clear).
    /// @param oem The OEM account that registered the vehicle.
    /// @param revoked Whether the vehicle's certificate has been revoked.
    struct Vehicle {
        bytes32 certFingerprint;
        bytes32 vinHash;
        address oem;
        bool revoked;
    }

    /// @notice A registered charger.
    /// @param certFingerprint SHA-256 of the charger certificate's DER encoding.
    /// @param evseIdHash A hash of the EVSE ID (ISO 15118 / eMI3).
    /// @param cpo The charge-point operator account that registered the charger.
    /// @param revoked Whether the charger's certificate has been revoked.
    struct Charger {
        bytes32 certFingerprint;
        bytes32 evseIdHash;
        address cpo;
        bool revoked;
    }

    /// @notice The admin trusted or distrusted a root certificate fingerprint for `role`.
    event TrustedRootSet(uint8 indexed role, bytes32 indexed fingerprint, bool trusted);
    /// @notice The admin registered or removed an OEM account.
    event OemSet(address indexed oem, bool registered);
    /// @notice The admin registered or removed a CPO account.
    event CpoSet(address indexed cpo, bool registered);
    /// @notice An OEM registered a vehicle and minted its title to `owner`.
    event VehicleRegistered(
        address indexed vehicle, address indexed owner, address indexed oem, bytes32 certFingerprint, bytes32 vinHash
    );
    /// @notice A CPO registered a charger.
    event ChargerRegistered(address indexed charger, address indexed cpo, bytes32 certFingerprint, bytes32 evseIdHash);
    /// @notice A certificate was revoked; `subject` is the vehicle or charger, or zero when the
    ///         admin revoked a bare fingerprint (e.g. a component or sub-CA certificate).
    event CertificateRevoked(bytes32 indexed fingerprint, address indexed subject, address by);

    /// @notice `role` is not a `Role`.
    error VehicleRegistryInvalidRole(uint8 role);
    /// @notice An address argument that must be set is zero.
    error VehicleRegistryZeroAddress();
    /// @notice A fingerprint argument that must be set is zero.
    error VehicleRegistryZeroFingerprint();
    /// @notice `caller` is not a registered OEM.
    error VehicleRegistryNotOem(address caller);
    /// @notice `caller` is not a registered CPO.
    error VehicleRegistryNotCpo(address caller);
    /// @notice `subject` is already registered as a vehicle or a charger.
    error VehicleRegistryAlreadyRegistered(address subject);
    /// @notice `vehicle` is not registered.
    error VehicleRegistryUnknownVehicle(address vehicle);
    /// @notice `charger` is not registered.
    error VehicleRegistryUnknownCharger(address charger);
    /// @notice The certificate `fingerprint` is revoked and cannot be registered or revoked again.
    error VehicleRegistryCertificateRevoked(bytes32 fingerprint);
    /// @notice `caller` may not revoke `subject` (only the admin or its issuing OEM/CPO may).
    error VehicleRegistryUnauthorizedRevoker(address subject, address caller);
    /// @notice `caller` is neither the owner of `tokenId` nor approved for it (ERC-4907 `setUser`).
    error VehicleRegistryNotOwnerOrApproved(uint256 tokenId, address caller);

    /// @notice Trusts (or stops trusting) a root certificate fingerprint for `role` (0 OEM, 1 CPO). Admin only.
    function setTrustedRoot(uint8 role, bytes32 fingerprint, bool trusted) external;

    /// @notice Whether `fingerprint` is a trusted root certificate for `role`.
    function isTrustedRoot(uint8 role, bytes32 fingerprint) external view returns (bool);

    /// @notice Registers or removes an OEM account. Admin only.
    function setOem(address oem, bool registered) external;

    /// @notice Registers or removes a charge-point operator account. Admin only.
    function setCpo(address cpo, bool registered) external;

    /// @notice Whether `account` is a registered OEM.
    function isOem(address account) external view returns (bool);

    /// @notice Whether `account` is a registered CPO.
    function isCpo(address account) external view returns (bool);

    /// @notice Registers `vehicle` and mints its title to `owner`. Registered OEMs only.
    function registerVehicle(address vehicle, address owner, bytes32 certFingerprint, bytes32 vinHash) external;

    /// @notice Registers `charger` under the calling CPO. Registered CPOs only.
    function registerCharger(address charger, bytes32 certFingerprint, bytes32 evseIdHash) external;

    /// @notice Revokes the vehicle's certificate. The admin or the issuing OEM (while registered).
    function revokeVehicle(address vehicle) external;

    /// @notice Revokes the charger's certificate. The admin or the issuing CPO (while registered).
    function revokeCharger(address charger) external;

    /// @notice Revokes a certificate by fingerprint alone (components, sub-CAs). Admin only.
    function revokeCertificate(bytes32 fingerprint) external;

    /// @notice Whether `vehicle` has a title.
    function isRegistered(address vehicle) external view returns (bool);

    /// @notice The record of `vehicle` (all zero when unregistered).
    function vehicleOf(address vehicle) external view returns (Vehicle memory);

    /// @notice The certificate fingerprint of `vehicle` (zero when unregistered).
    function certFingerprintOf(address vehicle) external view returns (bytes32);

    /// @notice The VIN hash of `vehicle` (zero when unregistered).
    function vinHashOf(address vehicle) external view returns (bytes32);

    /// @notice The OEM that registered `vehicle` (zero when unregistered).
    function oemOf(address vehicle) external view returns (address);

    /// @notice The record of `charger` (all zero when unregistered).
    function chargerOf(address charger) external view returns (Charger memory);

    /// @notice Whether `charger` is registered, not revoked, and its CPO is still registered.
    function isChargerActive(address charger) external view returns (bool);

    /// @notice Whether the vehicle or charger at `subject` has been revoked.
    function isSubjectRevoked(address subject) external view returns (bool);

    /// @notice Whether the certificate with `fingerprint` has been revoked.
    function isCertRevoked(bytes32 fingerprint) external view returns (bool);

    /// @notice Whether `account` is the title owner of `vehicle` or a manager (an ERC-721 operator
    ///         of the owner, or the account approved for this title). False for unregistered vehicles.
    function isOwnerOrManager(address vehicle, address account) external view returns (bool);
}
