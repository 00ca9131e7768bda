// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DemoToken
/// @notice The ERC-20 the embedded demo pays in: 18 decimals, EIP-2612 `permit` so a car can open a
///         charging channel in one transaction, and minting by its owner (the deployer) only.
/// @dev Not meant for production value; any ERC-20 works with ChargingChannels.
contract DemoToken is ERC20, ERC20Permit, Ownable {
    /// @param name_ The token name, also the EIP-712 domain name of `permit`.
    /// @param symbol_ The token symbol.
    /// @param initialOwner The account allowed to mint.
    constructor(string memory name_, string memory symbol_, address initialOwner)
        ERC20(name_, symbol_)
        ERC20Permit(name_)
        Ownable(initialOwner)
    {}

    /// @notice Creates `amount` tokens (base units, 18 decimals) for `to`.
    /// @dev Only the owner. Reverts with `OwnableUnauthorizedAccount(caller)` otherwise.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
