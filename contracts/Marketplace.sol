// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IListingTerms} from "./IListingTerms.sol";

/// @title Marketplace: developers list encrypted images and authorize the providers that may run them.
/// @notice Terms (royalty share, fixed fee) apply to channels opened after a change: Payments copies them
///         into each channel at opening, so an update never changes what an existing channel pays.
contract Marketplace is IListingTerms {
    uint16 public constant MAX_BPS = 10_000;
    uint256 public constant MAX_CID_BYTES = 128;

    struct Listing {
        // slot 0
        address developer;
        uint16 royaltyBps;
        bool allowEntrypointOverride;
        bool active;
        // slot 1
        address feeToken;
        uint96 fixedFee;
        // slot 2
        bytes32 manifestDigest;
        string metadataCid;
    }

    uint64 public listingCount;
    mapping(uint64 listingId => Listing) private _listings;
    mapping(uint64 listingId => mapping(address provider => bool)) private _authorized;
    mapping(uint64 listingId => mapping(address provider => string)) private _wrappedKeyCid;

    event ListingCreated(
        uint64 indexed listingId,
        address indexed developer,
        bytes32 manifestDigest,
        string metadataCid,
        uint16 royaltyBps,
        address feeToken,
        uint96 fixedFee,
        bool allowEntrypointOverride
    );
    event TermsUpdated(uint64 indexed listingId, uint16 royaltyBps, address feeToken, uint96 fixedFee);
    event MetadataUpdated(uint64 indexed listingId, string metadataCid);
    event ListingActiveSet(uint64 indexed listingId, bool active);
    event ProviderAuthorized(uint64 indexed listingId, address indexed provider, string wrappedKeyCid);
    event ProviderRevoked(uint64 indexed listingId, address indexed provider);

    error ListingNotFound(uint64 listingId);
    error NotListingDeveloper(uint64 listingId, address developer, address caller);
    error RoyaltyTooHigh(uint16 royaltyBps, uint16 maxBps);
    error EmptyManifestDigest();
    error CidTooLong(uint256 length, uint256 maxLength);
    error EmptyCid();
    error ZeroAddress();
    error FeeTokenRequired(uint96 fixedFee);
    error ProviderNotAuthorizedForListing(uint64 listingId, address provider);

    modifier onlyDeveloper(uint64 listingId) {
        Listing storage l = _listings[listingId];
        if (l.developer == address(0)) revert ListingNotFound(listingId);
        if (l.developer != msg.sender) revert NotListingDeveloper(listingId, l.developer, msg.sender);
        _;
    }

    /// @notice Lists an encrypted image; the caller becomes its developer. Ids start at 1 (0 means "no listing").
    function createListing(
        bytes32 manifestDigest,
        string calldata metadataCid,
        uint16 royaltyBps,
        address feeToken,
        uint96 fixedFee,
        bool allowEntrypointOverride
    ) external returns (uint64 listingId) {
        if (manifestDigest == bytes32(0)) revert EmptyManifestDigest();
        _checkCid(metadataCid, true);
        _checkTerms(royaltyBps, feeToken, fixedFee);
        listingId = ++listingCount;
        Listing storage l = _listings[listingId];
        l.developer = msg.sender;
        l.royaltyBps = royaltyBps;
        l.allowEntrypointOverride = allowEntrypointOverride;
        l.active = true;
        l.feeToken = feeToken;
        l.fixedFee = fixedFee;
        l.manifestDigest = manifestDigest;
        l.metadataCid = metadataCid;
        emit ListingCreated(
            listingId, msg.sender, manifestDigest, metadataCid, royaltyBps, feeToken, fixedFee, allowEntrypointOverride
        );
    }

    /// @notice Changes the terms for channels opened from now on.
    function updateTerms(uint64 listingId, uint16 royaltyBps, address feeToken, uint96 fixedFee)
        external
        onlyDeveloper(listingId)
    {
        _checkTerms(royaltyBps, feeToken, fixedFee);
        Listing storage l = _listings[listingId];
        l.royaltyBps = royaltyBps;
        l.feeToken = feeToken;
        l.fixedFee = fixedFee;
        emit TermsUpdated(listingId, royaltyBps, feeToken, fixedFee);
    }

    function updateMetadata(uint64 listingId, string calldata metadataCid) external onlyDeveloper(listingId) {
        _checkCid(metadataCid, true);
        _listings[listingId].metadataCid = metadataCid;
        emit MetadataUpdated(listingId, metadataCid);
    }

    /// @notice An inactive listing cannot be used by new channels; existing channels keep paying their terms.
    function setActive(uint64 listingId, bool active) external onlyDeveloper(listingId) {
        _listings[listingId].active = active;
        emit ListingActiveSet(listingId, active);
    }

    /// @notice Authorizes a provider, publishing the CID of the image key wrapped to its attested key.
    ///         Calling it again replaces the CID (e.g. after the provider rotated its key).
    function authorizeProvider(uint64 listingId, address provider, string calldata keyCid)
        external
        onlyDeveloper(listingId)
    {
        if (provider == address(0)) revert ZeroAddress();
        _checkCid(keyCid, true);
        _authorized[listingId][provider] = true;
        _wrappedKeyCid[listingId][provider] = keyCid;
        emit ProviderAuthorized(listingId, provider, keyCid);
    }

    function revokeProvider(uint64 listingId, address provider) external onlyDeveloper(listingId) {
        if (!_authorized[listingId][provider]) revert ProviderNotAuthorizedForListing(listingId, provider);
        delete _authorized[listingId][provider];
        delete _wrappedKeyCid[listingId][provider];
        emit ProviderRevoked(listingId, provider);
    }

    function getListing(uint64 listingId) external view returns (Listing memory) {
        Listing memory l = _listings[listingId];
        if (l.developer == address(0)) revert ListingNotFound(listingId);
        return l;
    }

    function isAuthorized(uint64 listingId, address provider) external view returns (bool) {
        return _authorized[listingId][provider];
    }

    function wrappedKeyCid(uint64 listingId, address provider) external view returns (string memory) {
        return _wrappedKeyCid[listingId][provider];
    }

    /// @inheritdoc IListingTerms
    function terms(uint64 listingId, address provider)
        external
        view
        returns (address developer, uint16 royaltyBps, address feeToken, uint96 fixedFee, bool active, bool authorized)
    {
        Listing storage l = _listings[listingId];
        return (l.developer, l.royaltyBps, l.feeToken, l.fixedFee, l.active, _authorized[listingId][provider]);
    }

    function _checkTerms(uint16 royaltyBps, address feeToken, uint96 fixedFee) private pure {
        if (royaltyBps > MAX_BPS) revert RoyaltyTooHigh(royaltyBps, MAX_BPS);
        if (fixedFee != 0 && feeToken == address(0)) revert FeeTokenRequired(fixedFee);
    }

    function _checkCid(string calldata cid, bool required) private pure {
        uint256 n = bytes(cid).length;
        if (required && n == 0) revert EmptyCid();
        if (n > MAX_CID_BYTES) revert CidTooLong(n, MAX_CID_BYTES);
    }
}
