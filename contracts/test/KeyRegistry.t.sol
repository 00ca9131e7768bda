// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {VehicleRegistry} from "../src/VehicleRegistry.sol";
import {IKeyRegistry} from "../src/interfaces/IKeyRegistry.sol";

contract KeyRegistryTest is Test {
    VehicleRegistry private vehicles;
    IKeyRegistry private keys;
    address private admin = address(0xAD);
    address private oem = address(0x0E);
    address private owner = address(0x0111);
    address private fleet = address(0x0333);
    address private stranger = address(0x0555);
    address private vehicle = address(0xCA5);
    bytes32 private constant GRANT = keccak256("grant-1");

    function setUp() public {
        vehicles = new VehicleRegistry(admin);
        // KeyRegistry is part of VehicleRegistry: one contract, one address.
        keys = IKeyRegistry(address(vehicles));
        vm.prank(admin);
        vehicles.setOem(oem, true);
        vm.prank(oem);
        vehicles.registerVehicle(vehicle, owner, keccak256("cert"), keccak256("vin"));
    }

    function test_supportsInterface() public view {
        assertTrue(vehicles.supportsInterface(type(IKeyRegistry).interfaceId));
    }

    function test_revoke_byOwner() public {
        vm.expectEmit(address(keys));
        emit IKeyRegistry.GrantRevoked(vehicle, GRANT, owner);
        vm.prank(owner);
        keys.revoke(vehicle, GRANT);
        assertTrue(keys.isRevoked(vehicle, GRANT));
        assertFalse(keys.isRevoked(vehicle, keccak256("grant-2")));
        assertFalse(keys.isRevoked(address(0xBEEF), GRANT));
    }

    function test_revoke_byManager() public {
        vm.prank(owner);
        vehicles.setApprovalForAll(fleet, true);
        vm.prank(fleet);
        keys.revoke(vehicle, GRANT);
        assertTrue(keys.isRevoked(vehicle, GRANT));
    }

    function test_revoke_byTitleApprovedAccount() public {
        vm.prank(owner);
        vehicles.approve(fleet, uint256(uint160(vehicle)));
        vm.expectEmit(address(keys));
        emit IKeyRegistry.EpochBumped(vehicle, 1, fleet);
        vm.prank(fleet);
        keys.revokeAll(vehicle);
    }

    function test_revoke_twiceReverts() public {
        vm.startPrank(owner);
        keys.revoke(vehicle, GRANT);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.KeyRegistryAlreadyRevoked.selector, vehicle, GRANT));
        keys.revoke(vehicle, GRANT);
        vm.stopPrank();
    }

    function test_revoke_unauthorized() public {
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.KeyRegistryUnauthorized.selector, vehicle, stranger));
        vm.prank(stranger);
        keys.revoke(vehicle, GRANT);
        // Unregistered vehicle: nobody is its owner.
        vm.expectRevert(
            abi.encodeWithSelector(IKeyRegistry.KeyRegistryUnauthorized.selector, address(0xBEEF), owner)
        );
        vm.prank(owner);
        keys.revoke(address(0xBEEF), GRANT);
    }

    function test_revokeAll_bumpsEpoch() public {
        assertEq(keys.epochOf(vehicle), 0);
        vm.expectEmit(address(keys));
        emit IKeyRegistry.EpochBumped(vehicle, 1, owner);
        vm.prank(owner);
        keys.revokeAll(vehicle);
        assertEq(keys.epochOf(vehicle), 1);
        vm.prank(owner);
        keys.revokeAll(vehicle);
        assertEq(keys.epochOf(vehicle), 2);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.KeyRegistryUnauthorized.selector, vehicle, stranger));
        vm.prank(stranger);
        keys.revokeAll(vehicle);
    }

    function test_saleMovesTheRightToRevoke() public {
        address buyer = address(0x0222);
        vm.prank(owner);
        vehicles.transferFrom(owner, buyer, uint256(uint160(vehicle)));
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.KeyRegistryUnauthorized.selector, vehicle, owner));
        vm.prank(owner);
        keys.revoke(vehicle, GRANT);
        vm.prank(buyer);
        keys.revoke(vehicle, GRANT);
        assertTrue(keys.isRevoked(vehicle, GRANT));
    }

    function testFuzz_onlyOwnerOrManagerRevokes(address caller, bytes32 grantId) public {
        vm.assume(caller != owner);
        vm.expectRevert(abi.encodeWithSelector(IKeyRegistry.KeyRegistryUnauthorized.selector, vehicle, caller));
        vm.prank(caller);
        keys.revoke(vehicle, grantId);
        vm.prank(owner);
        keys.revoke(vehicle, grantId);
        assertTrue(keys.isRevoked(vehicle, grantId));
    }
}
