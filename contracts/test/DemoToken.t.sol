// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {DemoToken} from "../src/DemoToken.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

contract DemoTokenTest is Test {
    DemoToken private token;
    address private owner = address(0xA11CE);
    uint256 private holderKey = 0xB0B;
    address private holder;

    function setUp() public {
        token = new DemoToken("Carchain Demo Euro", "cEUR", owner);
        holder = vm.addr(holderKey);
    }

    function test_metadata() public view {
        assertEq(token.name(), "Carchain Demo Euro");
        assertEq(token.symbol(), "cEUR");
        assertEq(token.decimals(), 18);
        assertEq(token.owner(), owner);
    }

    function test_mint_byOwner() public {
        vm.expectEmit(address(token));
        emit IERC20.Transfer(address(0), holder, 5e18);
        vm.prank(owner);
        token.mint(holder, 5e18);
        assertEq(token.balanceOf(holder), 5e18);
        assertEq(token.totalSupply(), 5e18);
    }

    function test_mint_revertsForOthers() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, holder));
        vm.prank(holder);
        token.mint(holder, 1);
    }

    function test_permit_setsAllowance() public {
        address spender = address(0x5EED);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                holder,
                spender,
                7e18,
                token.nonces(holder),
                deadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(holderKey, digest);
        token.permit(holder, spender, 7e18, deadline, v, r, s);
        assertEq(token.allowance(holder, spender), 7e18);
        assertEq(token.nonces(holder), 1);
    }
}
