// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A hostile ERC-20: on every transfer out of the target it calls back into the target
///         with `attack`, records whether that re-entry succeeded and its revert data, and carries on.
contract ReentrantToken is ERC20 {
    address private _target;
    bytes private _attack;
    bool public attempted;
    bool public reentered;
    bytes public revertData;

    constructor() ERC20("Hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target, bytes calldata attack) external {
        _target = target;
        _attack = attack;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == _target && _target != address(0) && !attempted) {
            attempted = true;
            (bool ok, bytes memory data) = _target.call(_attack);
            reentered = ok;
            revertData = data;
        }
    }
}
