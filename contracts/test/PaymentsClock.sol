// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Payments} from "../Payments.sol";
import {IListingTerms} from "../IListingTerms.sol";

/// @notice Payments with a settable clock, for the fuzz harness only: a whole random sequence with time jumps runs
///         inside one call. Everything but `_now()` is the production contract.
contract PaymentsClock is Payments {
    address public immutable clockOwner;
    uint256 public fakeNow;

    constructor(IListingTerms marketplace_, address clockOwner_) Payments(marketplace_) {
        clockOwner = clockOwner_;
        fakeNow = block.timestamp;
    }

    function setNow(uint256 t) external {
        require(msg.sender == clockOwner, "clock owner only");
        fakeNow = t;
    }

    function _now() internal view override returns (uint256) {
        return fakeNow;
    }
}
