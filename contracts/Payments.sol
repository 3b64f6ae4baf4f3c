// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IListingTerms} from "./IListingTerms.sol";

/// @title Payments: one contract, many payment channels, any plain ERC-20.
/// @notice A channel is keyed by (publisher, provider, podId). The provider claims a cumulative amount, never more
///         than the deposit and never more than `rate x` the seconds the channel was funded (plus what a
///         publisher-signed voucher allows): a top-up after a run-out restarts accrual, so stopped time is free.
///         Claims credit internal balances (provider and royalty recipients) that each owner withdraws alone.
///         A quote is bound to one publisher, one pod id, the priced spec (`specHash`) and the exact royalty list
///         the provider agreed to (`royaltiesHash`); every royalty entry pays a Marketplace listing exactly at its
///         terms. The money model is in docs/billing.md.
/// @dev Storage is packed into two slots per channel so a steady claim touches two channel slots and one balance.
contract Payments is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 public constant BPS = 10_000;
    uint256 public constant MAX_ROYALTIES = 8;

    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(address provider,address publisher,bytes32 podId,address token,uint256 ratePerSecond,uint32 minNoticeSeconds,uint64 expiry,bytes32 specHash,bytes32 royaltiesHash)"
    );
    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address publisher,address provider,bytes32 podId,uint256 cumulativeAmount)");

    /// @dev `_accruedBefore[channelId]` holds what is owed from before `since` (a rate change or an accrual
    ///      restart); without the flag that slot is never read (cheaper steady claims).
    uint8 private constant FLAG_ACCRUED_BEFORE = 1;
    uint8 private constant FLAG_FINALIZED = 2;

    /// @notice A provider's signed offer for one pod of one publisher (both mandatory: a quote for "any" publisher
    ///         or pod could be replayed onto a pod it did not price). `specHash` names the resources it priced
    ///         (emitted, for audit: the contract cannot see a pod); `royaltiesHash` is
    ///         keccak256(abi.encode(Royalty[])) of the exact royalty list the channel must carry.
    struct Quote {
        address provider;
        address publisher;
        bytes32 podId;
        address token;
        uint256 ratePerSecond;
        uint32 minNoticeSeconds;
        uint64 expiry;
        bytes32 specHash;
        bytes32 royaltiesHash;
    }

    /// @notice A royalty share of every claim, for one Marketplace listing the pod runs, exactly at its terms.
    struct Royalty {
        address recipient;
        uint16 bps;
        uint64 listingId;
    }

    /// @notice One entry of `claimBatch`: the channel (publisher, podId; the provider is the caller), the cumulative
    ///         total to claim, and the seconds of accrual to give up first (0: none), as `claimWaiving` does.
    struct BatchClaim {
        address publisher;
        bytes32 podId;
        uint256 cumulative;
        uint256 waiveSeconds;
    }

    struct Channel {
        // slot 0: the money
        uint128 deposit;
        uint128 claimed;
        // slot 1: the terms
        uint96 rate;
        uint40 since; // accrual anchor: the opening time, the last rate change, or the last restart by a top-up
        uint40 closeAt; // 0 while open; accrual stops here
        uint32 notice;
        uint32 tokenId;
        uint8 royaltyCount;
        uint8 flags;
    }

    /// @notice What `getChannel` returns: the channel with its token address resolved.
    struct ChannelView {
        address token;
        uint256 deposit;
        uint256 claimed;
        uint256 ratePerSecond;
        uint256 since;
        uint256 accruedBefore;
        uint256 closeAt;
        uint256 noticeSeconds;
        uint256 royaltyCount;
        bool exists;
        bool finalized;
    }

    IListingTerms public immutable marketplace;

    mapping(bytes32 channelId => Channel) private _channels;
    mapping(bytes32 channelId => uint256) private _accruedBefore;
    mapping(bytes32 channelId => mapping(uint256 index => Royalty)) private _royalties;
    mapping(address account => mapping(uint32 tokenId => uint256)) private _balances;
    mapping(address token => uint32) public tokenIdOf;
    address[] private _tokens;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed publisher,
        address indexed provider,
        bytes32 podId,
        address token,
        uint256 ratePerSecond,
        uint256 deposit,
        uint32 noticeSeconds,
        bytes32 specHash
    );
    event RoyaltyAdded(bytes32 indexed channelId, address indexed recipient, uint16 bps, uint64 listingId);
    event FixedFeePaid(bytes32 indexed channelId, address indexed recipient, uint64 listingId, uint256 amount);
    event ToppedUp(bytes32 indexed channelId, uint256 amount, uint256 deposit);
    /// @notice A top-up found the deposit used up: what is owed is frozen at the old deposit (`accruedBefore`) and
    ///         accrual starts again at `since`, so the time the pod stood stopped for funds is never billed.
    event AccrualRestarted(bytes32 indexed channelId, uint256 accruedBefore, uint256 since);
    event RateChanged(bytes32 indexed channelId, uint256 ratePerSecond, uint256 accruedBefore, bytes32 specHash);
    /// @notice The provider gave up `seconds_` of accrual (time it did not serve, e.g. restarting after a top-up):
    ///         the channel's `since` moved on by as much (read it with getChannel).
    event AccrualWaived(bytes32 indexed channelId, uint256 seconds_);
    event Claimed(bytes32 indexed channelId, uint256 cumulative, uint256 amount, uint256 providerAmount);
    /// @notice A `claimBatch` entry that moved nothing: `reason` is the selector of the error the single claim
    ///         (`claim` / `claimWaiving`) would have reverted with, e.g. ChannelNotFound for a settled channel.
    event ClaimSkipped(bytes32 indexed channelId, bytes4 reason);
    event RoyaltyPaid(bytes32 indexed channelId, address indexed recipient, uint256 amount);
    event CloseRequested(bytes32 indexed channelId, address indexed by, uint256 closeAt);
    event ChannelFinalized(bytes32 indexed channelId, uint256 claimed, uint256 refund);
    event Withdrawn(address indexed account, address indexed token, uint256 amount);

    error ZeroAddress();
    error ZeroPodId();
    error NotAContract(address token);
    error UnsupportedToken(address token, uint256 expected, uint256 actual);
    error ChannelNotFound(bytes32 channelId);
    error ChannelExists(bytes32 channelId);
    error ChannelIsClosing(bytes32 channelId, uint256 closeAt);
    error ChannelAlreadyClosed(bytes32 channelId, uint256 closeAt);
    error NoticeNotOver(bytes32 channelId, uint256 closeAt, uint256 nowSeconds);
    error QuoteExpired(uint64 expiry, uint256 nowSeconds);
    error QuoteNotBound(address quotePublisher, bytes32 quotePodId);
    error RoyaltiesNotQuoted(bytes32 quoted, bytes32 actual);
    error FreeFormRoyalty(uint256 index);
    error DuplicateListing(uint64 listingId);
    error TopUpTooSmall(uint256 amount, uint256 minimum);
    error WaiveTooLong(uint256 seconds_, uint256 maxSeconds);
    error QuoteNotForPublisher(address quotePublisher, address caller);
    error QuoteNotForPod(bytes32 quotePodId, bytes32 podId);
    error QuoteTokenMismatch(address quoteToken, address channelToken);
    error InvalidQuoteSignature(address provider);
    error InvalidVoucherSignature(address publisher);
    error NoticeTooShort(uint32 noticeSeconds, uint32 minNoticeSeconds);
    error RateTooLarge(uint256 ratePerSecond, uint256 max);
    error AmountTooLarge(uint256 amount, uint256 max);
    error NothingToClaim(uint256 cumulative, uint256 claimed);
    error ClaimExceedsDeposit(uint256 cumulative, uint256 deposit);
    error ClaimExceedsAccrued(uint256 cumulative, uint256 allowed);
    error TooManyRoyalties(uint256 count, uint256 max);
    error RoyaltiesExceedTotal(uint256 totalBps);
    error ListingInactive(uint64 listingId);
    error ListingNotFound(uint64 listingId);
    error ListingRecipientMismatch(uint64 listingId, address developer, address recipient);
    error RoyaltyNotAtListingTerms(uint64 listingId, uint16 bps, uint16 listingBps);
    error ListingFeeTokenMismatch(uint64 listingId, address feeToken, address token);
    error ProviderNotAuthorized(uint64 listingId, address provider);
    error NothingToWithdraw(address account, address token);

    constructor(IListingTerms marketplace_) EIP712("TrustedPods Payments", "1") {
        if (address(marketplace_) == address(0)) revert ZeroAddress();
        marketplace = marketplace_;
    }

    // ------------------------------------------------------------------ publisher actions

    /// @notice Opens a channel from the caller (publisher) to `quote.provider` for `podId`, pulling `deposit`
    ///         plus any listing fixed fees. The rate comes from the provider-signed quote.
    function open(
        Quote calldata quote,
        bytes calldata signature,
        bytes32 podId,
        uint256 deposit,
        uint32 noticeSeconds,
        Royalty[] calldata royalties
    ) external nonReentrant returns (bytes32 channelId) {
        if (podId == bytes32(0)) revert ZeroPodId();
        if (deposit > type(uint128).max) revert AmountTooLarge(deposit, type(uint128).max);
        _checkQuote(quote, signature, podId, noticeSeconds);
        bytes32 royaltiesHash = keccak256(abi.encode(royalties));
        if (royaltiesHash != quote.royaltiesHash) revert RoyaltiesNotQuoted(quote.royaltiesHash, royaltiesHash);
        channelId = channelIdOf(msg.sender, quote.provider, podId);
        Channel storage c = _channels[channelId];
        // A used key stays used (tombstone), so vouchers signed for an earlier channel can never be replayed.
        if (c.tokenId != 0 || c.flags != 0) revert ChannelExists(channelId);
        uint32 tokenId = _tokenIdFor(quote.token);
        uint256 fees = _storeRoyalties(channelId, quote.provider, quote.token, tokenId, royalties);
        c.deposit = uint128(deposit);
        c.rate = uint96(quote.ratePerSecond);
        c.since = uint40(_now());
        c.notice = noticeSeconds;
        c.tokenId = tokenId;
        c.royaltyCount = uint8(royalties.length);
        _emitOpened(channelId, quote, podId, deposit, noticeSeconds);
        _pull(quote.token, deposit + fees);
    }

    function _emitOpened(bytes32 channelId, Quote calldata quote, bytes32 podId, uint256 deposit, uint32 notice)
        private
    {
        emit ChannelOpened(
            channelId,
            msg.sender,
            quote.provider,
            podId,
            quote.token,
            quote.ratePerSecond,
            deposit,
            notice,
            quote.specHash
        );
    }

    /// @notice Adds to the deposit of an open channel. If the deposit had already run out (what accrued reached it),
    ///         the provider has stopped the pod for funds: what is owed is frozen at the old deposit and accrual
    ///         restarts now, so the publisher never pays for the time the pod was stopped. Such a restarting
    ///         top-up must pay at least the notice period at the rate: a dust top-up would make the provider
    ///         restart the pod and claim for nothing. A top-up before the run-out (or of zero) leaves accrual as
    ///         it is.
    function topUp(address provider, bytes32 podId, uint256 amount) external nonReentrant {
        bytes32 channelId = channelIdOf(msg.sender, provider, podId);
        Channel storage c = _channels[channelId];
        _requireOpen(channelId, c);
        uint256 oldDeposit = c.deposit;
        uint256 deposit = oldDeposit + amount;
        if (deposit > type(uint128).max) revert AmountTooLarge(deposit, type(uint128).max);
        if (amount != 0) {
            uint256 nowSeconds = _now();
            // At exactly the run-out second accrued == deposit: restarting then changes no number, so `>=` is safe.
            if (_accruedAt(channelId, c, nowSeconds) >= oldDeposit) {
                uint256 minimum = uint256(c.rate) * c.notice;
                if (amount < minimum) revert TopUpTooSmall(amount, minimum);
                _accruedBefore[channelId] = oldDeposit;
                c.flags |= FLAG_ACCRUED_BEFORE;
                c.since = uint40(nowSeconds);
                emit AccrualRestarted(channelId, oldDeposit, nowSeconds);
            }
        }
        c.deposit = uint128(deposit);
        emit ToppedUp(channelId, amount, deposit);
        _pull(_tokens[c.tokenId - 1], amount);
    }

    /// @notice Switches an open channel to the rate of a new provider-signed quote for this publisher and pod,
    ///         priced with the royalties the channel pays. What accrued at the old rate stays owed to the provider.
    ///         The provider serves only while the rate pays the spec that runs (docs/billing.md).
    function changeRate(Quote calldata quote, bytes calldata signature, bytes32 podId) external nonReentrant {
        bytes32 channelId = channelIdOf(msg.sender, quote.provider, podId);
        Channel storage c = _channels[channelId];
        _requireOpen(channelId, c);
        address token = _tokens[c.tokenId - 1];
        if (quote.token != token) revert QuoteTokenMismatch(quote.token, token);
        _checkQuote(quote, signature, podId, c.notice);
        bytes32 royaltiesHash = keccak256(abi.encode(_royaltyList(channelId, c.royaltyCount)));
        if (royaltiesHash != quote.royaltiesHash) revert RoyaltiesNotQuoted(quote.royaltiesHash, royaltiesHash);
        uint256 nowSeconds = _now();
        uint256 accruedSoFar = _accruedAt(channelId, c, nowSeconds);
        _accruedBefore[channelId] = accruedSoFar;
        c.flags |= FLAG_ACCRUED_BEFORE;
        c.since = uint40(nowSeconds);
        c.rate = uint96(quote.ratePerSecond);
        emit RateChanged(channelId, quote.ratePerSecond, accruedSoFar, quote.specHash);
    }

    /// @notice Starts the notice period: accrual stops `noticeSeconds` from now.
    function requestClose(address provider, bytes32 podId) external nonReentrant {
        bytes32 channelId = channelIdOf(msg.sender, provider, podId);
        Channel storage c = _channels[channelId];
        _requireOpen(channelId, c);
        uint256 closeAt = _now() + c.notice;
        c.closeAt = uint40(closeAt);
        emit CloseRequested(channelId, msg.sender, closeAt);
    }

    /// @notice After the notice period: pays the provider (and royalties) what accrued up to the close time and
    ///         not yet claimed, returns the rest of the deposit to the publisher, and retires the channel key.
    function refund(address provider, bytes32 podId) external nonReentrant returns (uint256 refunded) {
        bytes32 channelId = channelIdOf(msg.sender, provider, podId);
        Channel memory c = _channels[channelId];
        if (c.tokenId == 0) revert ChannelNotFound(channelId);
        uint256 nowSeconds = _now();
        if (c.closeAt == 0 || nowSeconds < c.closeAt) revert NoticeNotOver(channelId, c.closeAt, nowSeconds);
        uint256 owed = _accruedAt(channelId, _channels[channelId], c.closeAt);
        if (owed > c.deposit) owed = c.deposit;
        uint256 claimed = c.claimed;
        if (owed > claimed) {
            uint256 providerAmount = _credit(channelId, provider, c.tokenId, c.royaltyCount, owed - claimed);
            emit Claimed(channelId, owed, owed - claimed, providerAmount);
            claimed = owed;
        }
        refunded = c.deposit - claimed;
        _retire(channelId, c.royaltyCount, c.flags);
        emit ChannelFinalized(channelId, claimed, refunded);
        if (refunded != 0) _push(_tokens[c.tokenId - 1], msg.sender, refunded);
    }

    // ------------------------------------------------------------------ provider actions

    /// @notice Claims up to a cumulative total: at most the deposit and at most what accrued at the rate.
    function claim(address publisher, bytes32 podId, uint256 cumulative) external nonReentrant {
        bytes32 channelId = channelIdOf(publisher, msg.sender, podId);
        _claim(channelId, _channels[channelId], cumulative, 0);
    }

    /// @notice Claims with a publisher-signed cumulative voucher, which may authorize more than the rate accrued
    ///         (usage-priced resources). Still never more than the deposit.
    function claimWithVoucher(
        address publisher,
        bytes32 podId,
        uint256 cumulative,
        uint256 voucherAmount,
        bytes calldata signature
    ) external nonReentrant {
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(VOUCHER_TYPEHASH, publisher, msg.sender, podId, voucherAmount))
        );
        if (!SignatureChecker.isValidSignatureNowCalldata(publisher, digest, signature)) {
            revert InvalidVoucherSignature(publisher);
        }
        bytes32 channelId = channelIdOf(publisher, msg.sender, podId);
        _claim(channelId, _channels[channelId], cumulative, voucherAmount);
    }

    /// @notice Stops accrual now (the provider gives up the rest of the notice period), e.g. when it stops a pod.
    function providerClose(address publisher, bytes32 podId) external nonReentrant {
        bytes32 channelId = channelIdOf(publisher, msg.sender, podId);
        Channel storage c = _channels[channelId];
        if (c.tokenId == 0) revert ChannelNotFound(channelId);
        uint256 nowSeconds = _now();
        if (c.closeAt != 0 && c.closeAt <= nowSeconds) revert ChannelAlreadyClosed(channelId, c.closeAt);
        c.closeAt = uint40(nowSeconds);
        emit CloseRequested(channelId, msg.sender, nowSeconds);
    }

    /// @notice Gives up `seconds_` of accrual: the anchor moves forward, so the publisher pays `rate x seconds_`
    ///         less. The provider's daemon calls it for time it did not serve (the restart after a top-up, which
    ///         the contract cannot see); `refund` then settles the reduced amount. Never past now or the close.
    function waive(address publisher, bytes32 podId, uint256 seconds_) external nonReentrant {
        bytes32 channelId = channelIdOf(publisher, msg.sender, podId);
        _waive(channelId, _channels[channelId], seconds_);
    }

    /// @notice `waive(seconds_)` then `claim(cumulative)` in one transaction: the daemon's first claim after a pod
    ///         started serving, so giving back the unserved time costs a storage write, not a transaction.
    function claimWaiving(address publisher, bytes32 podId, uint256 cumulative, uint256 seconds_)
        external
        nonReentrant
    {
        bytes32 channelId = channelIdOf(publisher, msg.sender, podId);
        Channel storage c = _channels[channelId];
        _waive(channelId, c, seconds_);
        _claim(channelId, c, cumulative, 0);
    }

    /// @notice Claims many of the caller's channels in one transaction. Each entry gets exactly the single claim's
    ///         rules (`claimWaiving` when `waiveSeconds` is not 0, else `claim`): the channel is keyed by the caller
    ///         as provider, the cap is the deposit and what accrued, royalties are split per channel and every
    ///         channel emits its own events. An entry the single claim would refuse is skipped whole (no waiver, no
    ///         money, a `ClaimSkipped` event with that error's selector) instead of reverting the batch: a channel's
    ///         state can change between the provider's read and the batch's block (the publisher settles it after
    ///         its notice period), and one such channel must not cost the provider every other channel's claim.
    ///         Entries are applied in order, so a repeated channel is capped by what the earlier entry claimed.
    /// @return claimedCount how many entries moved money
    function claimBatch(BatchClaim[] calldata claims) external nonReentrant returns (uint256 claimedCount) {
        uint256 n = claims.length;
        // The provider's share is summed per token and credited once: one balance write per run of one token.
        uint32 runToken;
        uint256 runAmount;
        for (uint256 i = 0; i < n; ++i) {
            BatchClaim calldata e = claims[i];
            bytes32 channelId = channelIdOf(e.publisher, msg.sender, e.podId);
            Channel storage c = _channels[channelId];
            (bytes4 refusal, uint256 amount) = _tryClaim(channelId, c, e.cumulative, e.waiveSeconds);
            if (refusal != bytes4(0)) {
                emit ClaimSkipped(channelId, refusal);
                continue;
            }
            uint32 tokenId = c.tokenId;
            if (tokenId != runToken) {
                if (runAmount != 0) _balances[msg.sender][runToken] += runAmount;
                runToken = tokenId;
                runAmount = 0;
            }
            runAmount += amount;
            ++claimedCount;
        }
        if (runAmount != 0) _balances[msg.sender][runToken] += runAmount;
    }

    // ------------------------------------------------------------------ everyone

    /// @notice Sends the caller its whole balance of `token` (provider earnings, royalties, fixed fees).
    function withdraw(address token) external nonReentrant returns (uint256 amount) {
        uint32 tokenId = tokenIdOf[token];
        amount = tokenId == 0 ? 0 : _balances[msg.sender][tokenId];
        if (amount == 0) revert NothingToWithdraw(msg.sender, token);
        _balances[msg.sender][tokenId] = 0;
        emit Withdrawn(msg.sender, token, amount);
        _push(token, msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    function channelIdOf(address publisher, address provider, bytes32 podId) public pure returns (bytes32 id) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, publisher)
            mstore(add(p, 0x20), provider)
            mstore(add(p, 0x40), podId)
            id := keccak256(p, 0x60)
        }
    }

    function getChannel(address publisher, address provider, bytes32 podId)
        external
        view
        returns (ChannelView memory v)
    {
        bytes32 channelId = channelIdOf(publisher, provider, podId);
        Channel memory c = _channels[channelId];
        v.exists = c.tokenId != 0;
        v.finalized = c.flags & FLAG_FINALIZED != 0;
        if (!v.exists) return v;
        v.token = _tokens[c.tokenId - 1];
        v.deposit = c.deposit;
        v.claimed = c.claimed;
        v.ratePerSecond = c.rate;
        v.since = c.since;
        v.accruedBefore = c.flags & FLAG_ACCRUED_BEFORE != 0 ? _accruedBefore[channelId] : 0;
        v.closeAt = c.closeAt;
        v.noticeSeconds = c.notice;
        v.royaltyCount = c.royaltyCount;
    }

    function getRoyalties(bytes32 channelId) external view returns (Royalty[] memory list) {
        return _royaltyList(channelId, _channels[channelId].royaltyCount);
    }

    /// @notice The royalties hash a quote must carry for this list: keccak256(abi.encode(royalties)).
    function royaltiesHashOf(Royalty[] calldata royalties) external pure returns (bytes32) {
        return keccak256(abi.encode(royalties));
    }

    /// @notice Total accrued at the rate(s) up to now (or the close time), not capped by the deposit.
    function accrued(address publisher, address provider, bytes32 podId) public view returns (uint256) {
        bytes32 channelId = channelIdOf(publisher, provider, podId);
        Channel storage c = _channels[channelId];
        if (c.tokenId == 0) return 0;
        return _accruedAt(channelId, c, _now());
    }

    /// @notice What the provider could claim right now without a voucher.
    function claimable(address publisher, address provider, bytes32 podId) external view returns (uint256) {
        bytes32 channelId = channelIdOf(publisher, provider, podId);
        Channel storage c = _channels[channelId];
        if (c.tokenId == 0) return 0;
        uint256 limit = _accruedAt(channelId, c, _now());
        if (limit > c.deposit) limit = c.deposit;
        return limit > c.claimed ? limit - c.claimed : 0;
    }

    /// @notice Whether the channel pays `listingId`'s developer (checked against its terms when it opened).
    /// @return pays true when a royalty entry names the listing
    /// @return recipient the developer the entry pays
    /// @return bps the share the channel pays
    function paysListing(bytes32 channelId, uint64 listingId)
        external
        view
        returns (bool pays, address recipient, uint16 bps)
    {
        uint256 n = _channels[channelId].royaltyCount;
        for (uint256 i = 0; i < n; ++i) {
            Royalty memory r = _royalties[channelId][i];
            if (r.listingId == listingId && listingId != 0) return (true, r.recipient, r.bps);
        }
        return (false, address(0), 0);
    }

    function balanceOf(address account, address token) external view returns (uint256) {
        uint32 tokenId = tokenIdOf[token];
        return tokenId == 0 ? 0 : _balances[account][tokenId];
    }

    function tokenCount() external view returns (uint256) {
        return _tokens.length;
    }

    function quoteDigest(Quote calldata quote) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    QUOTE_TYPEHASH,
                    quote.provider,
                    quote.publisher,
                    quote.podId,
                    quote.token,
                    quote.ratePerSecond,
                    quote.minNoticeSeconds,
                    quote.expiry,
                    quote.specHash,
                    quote.royaltiesHash
                )
            )
        );
    }

    function voucherDigest(address publisher, address provider, bytes32 podId, uint256 cumulativeAmount)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, publisher, provider, podId, cumulativeAmount)));
    }

    // ------------------------------------------------------------------ internals

    /// @dev The clock. Virtual only so a test harness can drive time inside one transaction.
    function _now() internal view virtual returns (uint256) {
        return block.timestamp;
    }

    function _requireOpen(bytes32 channelId, Channel storage c) private view {
        if (c.tokenId == 0) revert ChannelNotFound(channelId);
        if (c.closeAt != 0) revert ChannelIsClosing(channelId, c.closeAt);
    }

    function _checkQuote(Quote calldata quote, bytes calldata signature, bytes32 podId, uint32 noticeSeconds)
        private
        view
    {
        if (quote.provider == address(0) || quote.token == address(0)) revert ZeroAddress();
        if (quote.publisher == address(0) || quote.podId == bytes32(0)) {
            revert QuoteNotBound(quote.publisher, quote.podId);
        }
        if (quote.publisher != msg.sender) revert QuoteNotForPublisher(quote.publisher, msg.sender);
        if (quote.podId != podId) revert QuoteNotForPod(quote.podId, podId);
        if (quote.expiry < _now()) revert QuoteExpired(quote.expiry, _now());
        if (noticeSeconds < quote.minNoticeSeconds) revert NoticeTooShort(noticeSeconds, quote.minNoticeSeconds);
        if (quote.ratePerSecond > type(uint96).max) revert RateTooLarge(quote.ratePerSecond, type(uint96).max);
        if (!SignatureChecker.isValidSignatureNowCalldata(quote.provider, quoteDigest(quote), signature)) {
            revert InvalidQuoteSignature(quote.provider);
        }
    }

    function _accruedAt(bytes32 channelId, Channel storage c, uint256 t) private view returns (uint256 total) {
        uint256 closeAt = c.closeAt;
        if (closeAt != 0 && t > closeAt) t = closeAt;
        uint256 since = c.since;
        if (t > since) total = uint256(c.rate) * (t - since);
        if (c.flags & FLAG_ACCRUED_BEFORE != 0) total += _accruedBefore[channelId];
    }

    function _claim(bytes32 channelId, Channel storage c, uint256 cumulative, uint256 voucherAmount) private {
        uint32 tokenId = c.tokenId;
        if (tokenId == 0) revert ChannelNotFound(channelId);
        uint256 claimed = c.claimed;
        if (cumulative <= claimed) revert NothingToClaim(cumulative, claimed);
        if (cumulative > c.deposit) revert ClaimExceedsDeposit(cumulative, c.deposit);
        if (cumulative > voucherAmount) {
            uint256 allowed = _accruedAt(channelId, c, _now());
            if (cumulative > allowed) revert ClaimExceedsAccrued(cumulative, allowed > voucherAmount ? allowed : voucherAmount);
        }
        c.claimed = uint128(cumulative);
        uint256 amount = cumulative - claimed;
        uint256 providerAmount = _credit(channelId, msg.sender, tokenId, c.royaltyCount, amount);
        emit Claimed(channelId, cumulative, amount, providerAmount);
    }

    /// @dev `claimWaiving`'s checks and effects without reverting: every check runs before any write, and a refusal
    ///      returns the selector the single claim would revert with (nothing written). On success the channel and the
    ///      royalty balances are updated and the events emitted; the provider's share is returned, not credited.
    function _tryClaim(bytes32 channelId, Channel storage c, uint256 cumulative, uint256 waiveSeconds)
        private
        returns (bytes4 refusal, uint256 providerAmount)
    {
        if (c.tokenId == 0) return (ChannelNotFound.selector, 0);
        uint256 nowSeconds = _now();
        uint256 since = c.since;
        if (waiveSeconds != 0) {
            uint256 end = nowSeconds;
            uint256 closeAt = c.closeAt;
            if (closeAt != 0 && closeAt < end) end = closeAt;
            if (waiveSeconds > (end > since ? end - since : 0)) return (WaiveTooLong.selector, 0);
            since += waiveSeconds;
        }
        uint256 claimed = c.claimed;
        if (cumulative <= claimed) return (NothingToClaim.selector, 0);
        if (cumulative > c.deposit) return (ClaimExceedsDeposit.selector, 0);
        if (cumulative > _accruedSince(channelId, c, nowSeconds, since)) return (ClaimExceedsAccrued.selector, 0);
        if (waiveSeconds != 0) {
            c.since = uint40(since);
            emit AccrualWaived(channelId, waiveSeconds);
        }
        c.claimed = uint128(cumulative);
        uint256 amount = cumulative - claimed;
        providerAmount = _splitRoyalties(channelId, c.tokenId, c.royaltyCount, amount);
        emit Claimed(channelId, cumulative, amount, providerAmount);
    }

    /// @dev `_accruedAt` with the anchor given (a waiver not yet written).
    function _accruedSince(bytes32 channelId, Channel storage c, uint256 t, uint256 since)
        private
        view
        returns (uint256 total)
    {
        uint256 closeAt = c.closeAt;
        if (closeAt != 0 && t > closeAt) t = closeAt;
        if (t > since) total = uint256(c.rate) * (t - since);
        if (c.flags & FLAG_ACCRUED_BEFORE != 0) total += _accruedBefore[channelId];
    }

    /// @dev The royalty part of `_credit`: pays each recipient its share (rounded down) and returns the rest.
    function _splitRoyalties(bytes32 channelId, uint32 tokenId, uint256 royaltyCount, uint256 amount)
        private
        returns (uint256 rest)
    {
        rest = amount;
        for (uint256 i = 0; i < royaltyCount; ++i) {
            Royalty storage r = _royalties[channelId][i];
            uint256 share = amount * r.bps / BPS;
            if (share != 0) {
                address recipient = r.recipient;
                _balances[recipient][tokenId] += share;
                rest -= share;
                emit RoyaltyPaid(channelId, recipient, share);
            }
        }
    }

    /// @dev Splits `amount` between the royalty recipients (rounded down) and the provider (the remainder).
    function _credit(bytes32 channelId, address provider, uint32 tokenId, uint256 royaltyCount, uint256 amount)
        private
        returns (uint256 rest)
    {
        // Inlined rather than calling _splitRoyalties: the single claim's path stays as cheap as before the batch.
        rest = amount;
        for (uint256 i = 0; i < royaltyCount; ++i) {
            Royalty storage r = _royalties[channelId][i];
            uint256 share = amount * r.bps / BPS;
            if (share != 0) {
                address recipient = r.recipient;
                _balances[recipient][tokenId] += share;
                rest -= share;
                emit RoyaltyPaid(channelId, recipient, share);
            }
        }
        _balances[provider][tokenId] += rest;
    }

    function _storeRoyalties(
        bytes32 channelId,
        address provider,
        address token,
        uint32 tokenId,
        Royalty[] calldata royalties
    ) private returns (uint256 fees) {
        uint256 n = royalties.length;
        if (n > MAX_ROYALTIES) revert TooManyRoyalties(n, MAX_ROYALTIES);
        uint256 totalBps;
        for (uint256 i = 0; i < n; ++i) {
            Royalty calldata r = royalties[i];
            if (r.recipient == address(0)) revert ZeroAddress();
            // A share without a listing would let a publisher route the provider's pay to itself.
            if (r.listingId == 0) revert FreeFormRoyalty(i);
            for (uint256 j = 0; j < i; ++j) {
                if (royalties[j].listingId == r.listingId) revert DuplicateListing(r.listingId);
            }
            totalBps += r.bps;
            fees += _checkListing(channelId, r, provider, token, tokenId);
            _royalties[channelId][i] = r;
            emit RoyaltyAdded(channelId, r.recipient, r.bps, r.listingId);
        }
        if (totalBps > BPS) revert RoyaltiesExceedTotal(totalBps);
    }

    function _checkListing(bytes32 channelId, Royalty calldata r, address provider, address token, uint32 tokenId)
        private
        returns (uint256 fee)
    {
        (address developer, uint16 royaltyBps, address feeToken, uint96 fixedFee, bool active, bool authorized) =
            marketplace.terms(r.listingId, provider);
        if (developer == address(0)) revert ListingNotFound(r.listingId);
        if (!active) revert ListingInactive(r.listingId);
        if (!authorized) revert ProviderNotAuthorized(r.listingId, provider);
        if (developer != r.recipient) revert ListingRecipientMismatch(r.listingId, developer, r.recipient);
        if (r.bps != royaltyBps) revert RoyaltyNotAtListingTerms(r.listingId, r.bps, royaltyBps);
        if (fixedFee != 0) {
            if (feeToken != token) revert ListingFeeTokenMismatch(r.listingId, feeToken, token);
            fee = fixedFee;
            _balances[developer][tokenId] += fee;
            emit FixedFeePaid(channelId, developer, r.listingId, fee);
        }
    }

    function _waive(bytes32 channelId, Channel storage c, uint256 seconds_) private {
        if (c.tokenId == 0) revert ChannelNotFound(channelId);
        uint256 end = _now();
        uint256 closeAt = c.closeAt;
        if (closeAt != 0 && closeAt < end) end = closeAt;
        uint256 since = c.since;
        uint256 maxSeconds = end > since ? end - since : 0;
        if (seconds_ > maxSeconds) revert WaiveTooLong(seconds_, maxSeconds);
        c.since = uint40(since + seconds_);
        emit AccrualWaived(channelId, seconds_);
    }

    function _royaltyList(bytes32 channelId, uint256 n) private view returns (Royalty[] memory list) {
        list = new Royalty[](n);
        for (uint256 i = 0; i < n; ++i) {
            list[i] = _royalties[channelId][i];
        }
    }

    function _retire(bytes32 channelId, uint256 royaltyCount, uint8 flags) private {
        if (flags & FLAG_ACCRUED_BEFORE != 0) delete _accruedBefore[channelId];
        for (uint256 i = 0; i < royaltyCount; ++i) {
            delete _royalties[channelId][i];
        }
        delete _channels[channelId];
        _channels[channelId].flags = FLAG_FINALIZED;
    }

    function _tokenIdFor(address token) private returns (uint32 tokenId) {
        tokenId = tokenIdOf[token];
        if (tokenId == 0) {
            if (token.code.length == 0) revert NotAContract(token);
            _tokens.push(token);
            tokenId = uint32(_tokens.length);
            tokenIdOf[token] = tokenId;
        }
    }

    /// @dev Pulls exactly `amount` from the caller; fee-on-transfer and rebasing-on-transfer tokens are refused.
    function _pull(address token, uint256 amount) private {
        if (amount == 0) return;
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 afterBalance = IERC20(token).balanceOf(address(this));
        uint256 received = afterBalance > before ? afterBalance - before : 0;
        if (received != amount) revert UnsupportedToken(token, amount, received);
    }

    /// @dev Sends exactly `amount`; a token that takes more from this contract than asked is refused.
    function _push(address token, address to, uint256 amount) private {
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransfer(to, amount);
        uint256 afterBalance = IERC20(token).balanceOf(address(this));
        uint256 sent = before > afterBalance ? before - afterBalance : 0;
        if (sent != amount) revert UnsupportedToken(token, amount, sent);
    }
}
