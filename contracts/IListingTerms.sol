// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice What Payments needs from the Marketplace to check a channel's royalty against a listing.
interface IListingTerms {
    /// @return developer who must receive the royalty (zero when the listing does not exist)
    /// @return royaltyBps minimum share of every claim, in basis points
    /// @return feeToken token of the fixed fee (zero when there is no fee)
    /// @return fixedFee paid once when a channel opens
    /// @return active whether new channels may use the listing
    /// @return authorized whether `provider` may run the listed image
    function terms(uint64 listingId, address provider)
        external
        view
        returns (address developer, uint16 royaltyBps, address feeToken, uint96 fixedFee, bool active, bool authorized);
}
