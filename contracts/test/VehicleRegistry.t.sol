// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {VehicleRegistry} from "../src/VehicleRegistry.sol";
import {IVehicleRegistry} from "../src/interfaces/IVehicleRegistry.sol";
import {IERC4907} from "../src/interfaces/IERC4907.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";

contract VehicleRegistryTest is Test {
    VehicleRegistry private registry;
    address private admin = address(0xAD);
    address private oem = address(0x0E);
    address private cpo = address(0xC0);
    address private owner = address(0x0111);
    address private buyer = address(0x0222);
    address private fleet = address(0x0333);
    address private renter = address(0x0444);
    address private vehicle = address(0xCA5);
    address private charger = address(0xC4A);
    bytes32 private constant ROOT = keccak256("oem root");
    bytes32 private constant VEHICLE_CERT = keccak256("vehicle cert");
    bytes32 private constant CHARGER_CERT = keccak256("charger cert");
    bytes32 private constant VIN_HASH = keccak256("WVWZZZ1JZXW000001");
    bytes32 private constant EVSE_HASH = keccak256("DE*ABC*E123");
    uint256 private tokenId;

    function setUp() public {
        registry = new VehicleRegistry(admin);
        vm.startPrank(admin);
        registry.setOem(oem, true);
        registry.setCpo(cpo, true);
        vm.stopPrank();
        tokenId = uint256(uint160(vehicle));
    }

    function _registerVehicle() private {
        vm.prank(oem);
        registry.registerVehicle(vehicle, owner, VEHICLE_CERT, VIN_HASH);
    }

    function _registerCharger() private {
        vm.prank(cpo);
        registry.registerCharger(charger, CHARGER_CERT, EVSE_HASH);
    }

    // ------------------------------------------------------------ admin

    function test_setTrustedRoot() public {
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.TrustedRootSet(1, ROOT, true);
        vm.prank(admin);
        registry.setTrustedRoot(1, ROOT, true);
        assertTrue(registry.isTrustedRoot(1, ROOT));
        assertFalse(registry.isTrustedRoot(0, ROOT));
        vm.prank(admin);
        registry.setTrustedRoot(1, ROOT, false);
        assertFalse(registry.isTrustedRoot(1, ROOT));
    }

    function test_setTrustedRoot_errors() public {
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryInvalidRole.selector, uint8(2)));
        vm.prank(admin);
        registry.setTrustedRoot(2, ROOT, true);
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroFingerprint.selector);
        vm.prank(admin);
        registry.setTrustedRoot(0, bytes32(0), true);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, oem));
        vm.prank(oem);
        registry.setTrustedRoot(0, ROOT, true);
    }

    function test_setOemAndCpo() public {
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.OemSet(oem, false);
        vm.prank(admin);
        registry.setOem(oem, false);
        assertFalse(registry.isOem(oem));
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.CpoSet(buyer, true);
        vm.prank(admin);
        registry.setCpo(buyer, true);
        assertTrue(registry.isCpo(buyer));
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroAddress.selector);
        vm.prank(admin);
        registry.setOem(address(0), true);
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroAddress.selector);
        vm.prank(admin);
        registry.setCpo(address(0), true);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, buyer));
        vm.prank(buyer);
        registry.setCpo(buyer, true);
    }

    function test_adminTransferIsTwoStep() public {
        vm.prank(admin);
        registry.transferOwnership(buyer);
        assertEq(registry.owner(), admin);
        vm.prank(buyer);
        registry.acceptOwnership();
        assertEq(registry.owner(), buyer);
    }

    // ------------------------------------------------------------ vehicles

    function test_registerVehicle() public {
        vm.expectEmit(address(registry));
        emit IERC721.Transfer(address(0), owner, tokenId);
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.VehicleRegistered(vehicle, owner, oem, VEHICLE_CERT, VIN_HASH);
        _registerVehicle();
        assertEq(registry.ownerOf(tokenId), owner);
        assertTrue(registry.isRegistered(vehicle));
        assertEq(registry.certFingerprintOf(vehicle), VEHICLE_CERT);
        assertEq(registry.vinHashOf(vehicle), VIN_HASH);
        assertEq(registry.oemOf(vehicle), oem);
        IVehicleRegistry.Vehicle memory record = registry.vehicleOf(vehicle);
        assertEq(record.certFingerprint, VEHICLE_CERT);
        assertEq(record.vinHash, VIN_HASH);
        assertEq(record.oem, oem);
        assertFalse(record.revoked);
        assertFalse(registry.isRegistered(charger));
    }

    function test_registerVehicle_errors() public {
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryNotOem.selector, cpo));
        vm.prank(cpo);
        registry.registerVehicle(vehicle, owner, VEHICLE_CERT, VIN_HASH);

        vm.startPrank(oem);
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroAddress.selector);
        registry.registerVehicle(address(0), owner, VEHICLE_CERT, VIN_HASH);
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroFingerprint.selector);
        registry.registerVehicle(vehicle, owner, bytes32(0), VIN_HASH);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(0)));
        registry.registerVehicle(vehicle, address(0), VEHICLE_CERT, VIN_HASH);
        registry.registerVehicle(vehicle, owner, VEHICLE_CERT, VIN_HASH);
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryAlreadyRegistered.selector, vehicle));
        registry.registerVehicle(vehicle, owner, keccak256("other"), VIN_HASH);
        vm.stopPrank();

        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryAlreadyRegistered.selector, vehicle));
        vm.prank(cpo);
        registry.registerCharger(vehicle, CHARGER_CERT, EVSE_HASH);

        vm.prank(admin);
        registry.revokeCertificate(keccak256("bad"));
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryCertificateRevoked.selector, keccak256("bad"))
        );
        vm.prank(oem);
        registry.registerVehicle(address(0xBEEF), owner, keccak256("bad"), VIN_HASH);
    }

    function testFuzz_registerVehicle_titleIsTheAddress(address anyVehicle, address anyOwner, bytes32 cert) public {
        vm.assume(anyVehicle != address(0) && anyOwner != address(0) && cert != bytes32(0));
        vm.assume(anyOwner.code.length == 0 || anyOwner == address(this));
        vm.prank(oem);
        registry.registerVehicle(anyVehicle, anyOwner, cert, VIN_HASH);
        assertEq(registry.ownerOf(uint256(uint160(anyVehicle))), anyOwner);
        assertTrue(registry.isOwnerOrManager(anyVehicle, anyOwner));
        assertEq(registry.balanceOf(anyOwner), 1);
    }

    // ------------------------------------------------------------ managers

    function test_isOwnerOrManager() public {
        assertFalse(registry.isOwnerOrManager(vehicle, owner)); // unregistered
        _registerVehicle();
        assertTrue(registry.isOwnerOrManager(vehicle, owner));
        assertFalse(registry.isOwnerOrManager(vehicle, fleet));
        assertFalse(registry.isOwnerOrManager(vehicle, address(0)));

        vm.prank(owner);
        registry.setApprovalForAll(fleet, true);
        assertTrue(registry.isOwnerOrManager(vehicle, fleet));

        vm.prank(owner);
        registry.approve(buyer, tokenId);
        assertTrue(registry.isOwnerOrManager(vehicle, buyer));

        vm.prank(owner);
        registry.transferFrom(owner, buyer, tokenId);
        // The old owner and its operator lose the vehicle; the new owner has it.
        assertFalse(registry.isOwnerOrManager(vehicle, owner));
        assertFalse(registry.isOwnerOrManager(vehicle, fleet));
        assertTrue(registry.isOwnerOrManager(vehicle, buyer));
    }

    // ------------------------------------------------------------ ERC-4907

    function test_supportsInterface() public view {
        assertEq(type(IERC4907).interfaceId, bytes4(0xad092b5c));
        assertTrue(registry.supportsInterface(0xad092b5c));
        assertTrue(registry.supportsInterface(0x80ac58cd)); // ERC-721
        assertTrue(registry.supportsInterface(0x5b5e139f)); // ERC-721 Metadata
        assertTrue(registry.supportsInterface(0x01ffc9a7)); // ERC-165
        assertFalse(registry.supportsInterface(0xffffffff));
    }

    function test_setUser_rentalExpires() public {
        _registerVehicle();
        uint64 expires = uint64(block.timestamp + 1 days);
        vm.expectEmit(address(registry));
        emit IERC4907.UpdateUser(tokenId, renter, expires);
        vm.prank(owner);
        registry.setUser(tokenId, renter, expires);
        assertEq(registry.userOf(tokenId), renter);
        assertEq(registry.userExpires(tokenId), expires);
        vm.warp(expires);
        assertEq(registry.userOf(tokenId), renter);
        vm.warp(uint256(expires) + 1);
        assertEq(registry.userOf(tokenId), address(0));
        assertEq(registry.userExpires(tokenId), expires);
    }

    function test_setUser_byManager() public {
        _registerVehicle();
        vm.prank(owner);
        registry.setApprovalForAll(fleet, true);
        vm.prank(fleet);
        registry.setUser(tokenId, renter, uint64(block.timestamp + 60));
        assertEq(registry.userOf(tokenId), renter);
    }

    function test_setUser_errors() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        registry.setUser(tokenId, renter, 1);
        _registerVehicle();
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryNotOwnerOrApproved.selector, tokenId, renter)
        );
        vm.prank(renter);
        registry.setUser(tokenId, renter, uint64(block.timestamp + 60));
    }

    function test_transferClearsUser() public {
        _registerVehicle();
        vm.prank(owner);
        registry.setUser(tokenId, renter, uint64(block.timestamp + 1 days));
        vm.expectEmit(address(registry));
        emit IERC4907.UpdateUser(tokenId, address(0), 0);
        vm.prank(owner);
        registry.transferFrom(owner, buyer, tokenId);
        assertEq(registry.userOf(tokenId), address(0));
        assertEq(registry.userExpires(tokenId), 0);
    }

    // ------------------------------------------------------------ chargers

    function test_registerCharger() public {
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.ChargerRegistered(charger, cpo, CHARGER_CERT, EVSE_HASH);
        _registerCharger();
        IVehicleRegistry.Charger memory record = registry.chargerOf(charger);
        assertEq(record.cpo, cpo);
        assertEq(record.certFingerprint, CHARGER_CERT);
        assertEq(record.evseIdHash, EVSE_HASH);
        assertFalse(record.revoked);
        assertTrue(registry.isChargerActive(charger));
        // Removing the CPO deactivates its chargers.
        vm.prank(admin);
        registry.setCpo(cpo, false);
        assertFalse(registry.isChargerActive(charger));
        assertFalse(registry.isChargerActive(vehicle));
    }

    function test_registerCharger_errors() public {
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryNotCpo.selector, oem));
        vm.prank(oem);
        registry.registerCharger(charger, CHARGER_CERT, EVSE_HASH);
        _registerCharger();
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryAlreadyRegistered.selector, charger));
        vm.prank(cpo);
        registry.registerCharger(charger, CHARGER_CERT, EVSE_HASH);
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryAlreadyRegistered.selector, charger));
        vm.prank(oem);
        registry.registerVehicle(charger, owner, VEHICLE_CERT, VIN_HASH);
    }

    // ------------------------------------------------------------ revocation

    function test_revokeVehicle_byOem() public {
        _registerVehicle();
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.CertificateRevoked(VEHICLE_CERT, vehicle, oem);
        vm.prank(oem);
        registry.revokeVehicle(vehicle);
        assertTrue(registry.isSubjectRevoked(vehicle));
        assertTrue(registry.isCertRevoked(VEHICLE_CERT));
        assertTrue(registry.vehicleOf(vehicle).revoked);
        // The title survives revocation.
        assertEq(registry.ownerOf(tokenId), owner);
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryCertificateRevoked.selector, VEHICLE_CERT)
        );
        vm.prank(admin);
        registry.revokeVehicle(vehicle);
    }

    function test_revokeVehicle_byAdmin() public {
        _registerVehicle();
        vm.prank(admin);
        registry.revokeVehicle(vehicle);
        assertTrue(registry.isSubjectRevoked(vehicle));
    }

    function test_revokeVehicle_errors() public {
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnknownVehicle.selector, vehicle));
        vm.prank(admin);
        registry.revokeVehicle(vehicle);
        _registerVehicle();
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnauthorizedRevoker.selector, vehicle, owner)
        );
        vm.prank(owner);
        registry.revokeVehicle(vehicle);
        // Another OEM may not revoke it, nor may the issuing OEM once it is removed.
        vm.prank(admin);
        registry.setOem(buyer, true);
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnauthorizedRevoker.selector, vehicle, buyer)
        );
        vm.prank(buyer);
        registry.revokeVehicle(vehicle);
        vm.prank(admin);
        registry.setOem(oem, false);
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnauthorizedRevoker.selector, vehicle, oem)
        );
        vm.prank(oem);
        registry.revokeVehicle(vehicle);
    }

    function test_revokeCharger() public {
        _registerCharger();
        vm.expectRevert(
            abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnauthorizedRevoker.selector, charger, oem)
        );
        vm.prank(oem);
        registry.revokeCharger(charger);
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.CertificateRevoked(CHARGER_CERT, charger, cpo);
        vm.prank(cpo);
        registry.revokeCharger(charger);
        assertTrue(registry.isSubjectRevoked(charger));
        assertFalse(registry.isChargerActive(charger));
        assertTrue(registry.chargerOf(charger).revoked);
        vm.expectRevert(abi.encodeWithSelector(IVehicleRegistry.VehicleRegistryUnknownCharger.selector, vehicle));
        vm.prank(admin);
        registry.revokeCharger(vehicle);
    }

    function test_revokeCertificate_byFingerprint() public {
        _registerVehicle();
        vm.expectEmit(address(registry));
        emit IVehicleRegistry.CertificateRevoked(VEHICLE_CERT, address(0), admin);
        vm.prank(admin);
        registry.revokeCertificate(VEHICLE_CERT);
        // Revoking the fingerprint revokes the vehicle that carries it.
        assertTrue(registry.isSubjectRevoked(vehicle));
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, oem));
        vm.prank(oem);
        registry.revokeCertificate(keccak256("x"));
        vm.expectRevert(IVehicleRegistry.VehicleRegistryZeroFingerprint.selector);
        vm.prank(admin);
        registry.revokeCertificate(bytes32(0));
    }
}
