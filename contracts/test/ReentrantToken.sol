// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Malicious test token: on every transfer it calls back into a target with prepared calldata, and
///         records whether that re-entry succeeded. Payments must make every re-entry fail.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public attack;
    uint256 public attempts;
    uint256 public successes;
    bool private _inAttack;

    constructor() ERC20("Reentrant", "REE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata attack_) external {
        target = target_;
        attack = attack_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target != address(0) && !_inAttack && from != address(0)) {
            _inAttack = true;
            attempts++;
            (bool ok,) = target.call(attack);
            if (ok) successes++;
            _inAttack = false;
        }
    }
}
