// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IListingTerms} from "../IListingTerms.sol";

/// @notice Listing terms the fuzz harness sets directly (the real Marketplace is tested on its own): every listing
///         is active, fee-free and authorizes every provider.
contract ListingTermsStub is IListingTerms {
    address public immutable owner;

    struct Terms {
        address developer;
        uint16 royaltyBps;
    }

    mapping(uint64 listingId => Terms) private _terms;

    constructor() {
        owner = msg.sender;
    }

    function set(uint64 listingId, address developer, uint16 royaltyBps) external {
        require(msg.sender == owner, "owner only");
        _terms[listingId] = Terms(developer, royaltyBps);
    }

    function terms(uint64 listingId, address)
        external
        view
        returns (address developer, uint16 royaltyBps, address feeToken, uint96 fixedFee, bool active, bool authorized)
    {
        Terms memory t = _terms[listingId];
        return (t.developer, t.royaltyBps, address(0), 0, true, true);
    }
}
