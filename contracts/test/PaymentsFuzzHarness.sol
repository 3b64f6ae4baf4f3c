// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Payments} from "../Payments.sol";
import {PaymentsClock} from "./PaymentsClock.sol";
import {Actor} from "./Actor.sol";
import {ListingTermsStub} from "./ListingTermsStub.sol";

interface IMintable {
    function mint(address to, uint256 amount) external;
}

interface IReentrant {
    function arm(address target, bytes calldata attack) external;
    function successes() external view returns (uint256);
}

/// @notice Runs random sequences of Payments operations (generated off chain) inside the real EVM, predicts every
///         outcome with an independent model, and reverts with `Violation` at the first disagreement or broken
///         invariant. Meant to be driven with eth_call (state is thrown away after each batch).
contract PaymentsFuzzHarness {
    uint256 internal constant ACTORS = 7;
    uint256 internal constant BPS = 10_000;

    // op kinds
    uint8 internal constant OPEN = 0;
    uint8 internal constant CLAIM = 1;
    uint8 internal constant VOUCHER = 2;
    uint8 internal constant TOPUP = 3;
    uint8 internal constant RATE = 4;
    uint8 internal constant CLOSE = 5;
    uint8 internal constant PROVIDER_CLOSE = 6;
    uint8 internal constant REFUND = 7;
    uint8 internal constant WITHDRAW = 8;
    uint8 internal constant ATTACK = 9;
    uint8 internal constant WAIVE = 10;

    // how an open treats the royalty list (the provider always signs the honest one: one entry per listing, at
    // its terms), and how a changeRate treats its quote
    // modes 0-11: the honest list
    uint256 internal constant R_FREE_FORM = 12; // the royalty redirect: a share without a listing
    uint256 internal constant R_BPS_OFF = 13; // a listing's share off its terms
    uint256 internal constant R_DUPLICATE = 14; // one listing twice
    uint256 internal constant R_UNQUOTED = 15; // a list other than the one the provider signed
    uint256 internal constant Q_FOREIGN_POD = 4;
    uint256 internal constant Q_UNBOUND = 5;
    uint256 internal constant Q_EXPIRED = 6;
    uint256 internal constant Q_ROYALTIES = 7;

    // token kinds
    uint8 internal constant PLAIN = 0;
    uint8 internal constant REENTRANT = 1;
    uint8 internal constant NO_RETURN = 2;
    uint8 internal constant FEE_ON_TRANSFER = 3;

    struct Op {
        uint8 kind;
        uint8 who;
        uint8 ch;
        uint32 dt;
        uint128 x;
        uint128 y;
    }

    struct Seq {
        uint8 publisher;
        uint8 provider;
        uint8 tokenKind;
        uint8[] recipients;
        uint16[] bps;
        Op[] ops;
    }

    struct Model {
        bool exists;
        bool finalized;
        uint256 deposit;
        uint256 claimed;
        uint256 rate;
        uint256 since;
        uint256 accruedBefore;
        uint256 closeAt;
        uint256 notice;
        bytes32 podId;
        // Independent of the accrual formula: the value of the service the publisher got. It grows at the rate
        // while the channel is funded (the pod runs) and stops at the deposit (run-out) or at the close time;
        // the last, partial second counts pro rata. Claims without a voucher must never exceed it.
        uint256 served;
        // The largest voucher a successful claim presented: what the publisher signed for beyond the rate.
        uint256 voucherMax;
        uint256 restarts;
        // What claims credited the provider (its share after royalties), for the provider's floor.
        uint256 providerPaid;
    }

    struct Ctx {
        uint256 seq;
        uint256 step;
        address token;
        Actor publisher;
        Actor provider;
        uint256 royaltyBpsTotal;
    }

    struct Stats {
        uint256 sequences;
        uint256 ops;
        uint256 succeeded;
        uint256 refused;
        uint256 reentryAttempts;
        uint256 restarts;
        // attacks the contract refused, by kind (the generator must reach each)
        uint256 royaltyAttacks;
        uint256 quoteAttacks;
        uint256 dustTopUps;
        uint256 waives;
    }

    error Violation(uint256 seq, uint256 step, string what, uint256 expected, uint256 actual);

    Actor[ACTORS] public actors;
    ListingTermsStub public immutable listings;
    PaymentsClock public payments;
    address[4] public tokens;
    bool private _initialized;
    uint256 private _nonce;

    // ghost state: what each actor should hold inside Payments and in its wallet, per token
    mapping(address token => mapping(address actor => uint256)) private _internal;
    mapping(address token => mapping(address actor => uint256)) private _wallet;
    mapping(address token => uint256) private _held;
    mapping(address token => uint256) private _minted;

    // the current sequence's royalty recipients, shares and listings, for the model of the split
    address[] private _recipients;
    uint16[] private _bps;
    uint64[] private _listingIds;
    uint64 private _nextListing;
    Stats private _stats;

    constructor() {
        listings = new ListingTermsStub();
        for (uint256 i = 0; i < ACTORS; ++i) {
            actors[i] = new Actor();
        }
    }

    function init(PaymentsClock payments_, address[4] calldata tokens_) external {
        require(!_initialized, "initialized");
        _initialized = true;
        payments = payments_;
        tokens = tokens_;
        for (uint256 t = 0; t < 4; ++t) {
            for (uint256 i = 0; i < ACTORS; ++i) {
                actors[i].exec(tokens_[t], abi.encodeCall(IERC20.approve, (address(payments_), type(uint256).max)));
            }
        }
    }

    function actorAddresses() external view returns (address[ACTORS] memory list) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            list[i] = address(actors[i]);
        }
    }

    /// @notice Runs every sequence; reverts with Violation on the first broken expectation.
    function run(Seq[] calldata seqs) external returns (Stats memory stats) {
        for (uint256 s = 0; s < seqs.length; ++s) {
            _runOne(seqs[s], s, stats);
        }
        stats.royaltyAttacks = _stats.royaltyAttacks;
        stats.quoteAttacks = _stats.quoteAttacks;
        stats.dustTopUps = _stats.dustTopUps;
        stats.waives = _stats.waives;
        stats.sequences = seqs.length;
        stats.reentryAttempts = _reentryAttempts();
        if (IReentrant(tokens[REENTRANT]).successes() != 0) {
            revert Violation(type(uint256).max, 0, "a re-entrant call succeeded", 0, IReentrant(tokens[REENTRANT]).successes());
        }
    }

    function _reentryAttempts() private view returns (uint256 n) {
        (bool ok, bytes memory ret) = tokens[REENTRANT].staticcall(abi.encodeWithSignature("attempts()"));
        if (ok) n = abi.decode(ret, (uint256));
    }

    function _runOne(Seq calldata seq, uint256 s, Stats memory stats) private {
        Ctx memory c;
        c.seq = s;
        c.token = tokens[seq.tokenKind % 4];
        c.publisher = actors[seq.publisher % ACTORS];
        c.provider = actors[seq.provider % ACTORS];
        for (uint256 i = 0; i < seq.bps.length; ++i) {
            c.royaltyBpsTotal += seq.bps[i];
        }
        // Fund the publisher for this sequence.
        uint256 funding = 1e30;
        IMintable(c.token).mint(address(c.publisher), funding);
        _wallet[c.token][address(c.publisher)] += funding;
        _minted[c.token] += funding;
        if (seq.tokenKind % 4 == REENTRANT) {
            // Every token transfer makes the provider try to withdraw again, from inside Payments.
            c.provider.setTrusted(c.token);
            IReentrant(c.token).arm(
                address(c.provider),
                abi.encodeCall(Actor.execStrict, (address(payments), abi.encodeCall(Payments.withdraw, (c.token))))
            );
        }
        delete _recipients;
        delete _bps;
        delete _listingIds;
        // Each royalty is a listing whose developer is the recipient and whose terms are exactly its share.
        for (uint256 i = 0; i < seq.bps.length; ++i) {
            address dev = address(actors[seq.recipients[i] % ACTORS]);
            uint64 id = ++_nextListing;
            listings.set(id, dev, seq.bps[i]);
            _recipients.push(dev);
            _bps.push(seq.bps[i]);
            _listingIds.push(id);
        }
        Model[2] memory m;
        _nonce++;
        m[0].podId = keccak256(abi.encode(_nonce, uint256(0)));
        m[1].podId = keccak256(abi.encode(_nonce, uint256(1)));
        for (uint256 k = 0; k < seq.ops.length; ++k) {
            c.step = k;
            Op calldata op = seq.ops[k];
            if (op.dt != 0) _advance(m, payments.fakeNow() + op.dt);
            if (op.kind == TOPUP) _alignToRunOut(m[op.ch % 2], m, op.y % 4);
            bool ok = _apply(seq, c, m, op);
            stats.ops++;
            if (ok) stats.succeeded++;
            else stats.refused++;
            _checkInvariants(c, m);
        }
        stats.restarts += m[0].restarts + m[1].restarts;
    }

    function _advance(Model[2] memory m, uint256 t1) private {
        uint256 t0 = payments.fakeNow();
        _serve(m[0], t0, t1);
        _serve(m[1], t0, t1);
        payments.setNow(t1);
    }

    /// @dev Half the top-ups land on the run-out boundary: mode 0 at exactly the first second the accrual reaches
    ///      the deposit, mode 1 one second before it (rounding with rates that do not divide the deposit).
    function _alignToRunOut(Model memory ch, Model[2] memory m, uint256 mode) private {
        if (mode > 1 || !ch.exists || ch.closeAt != 0 || ch.rate == 0 || ch.accruedBefore >= ch.deposit) return;
        uint256 t = ch.since + (ch.deposit - ch.accruedBefore + ch.rate - 1) / ch.rate;
        if (mode == 1) t -= 1;
        // No longer than the largest time jump a sequence takes anyway (the contract keeps times in uint40).
        uint256 nowT = payments.fakeNow();
        if (t > nowT && t - nowT <= type(uint32).max) _advance(m, t);
    }

    /// @dev The publisher gets service while its deposit lasts: `rate` per second from `t0` to `t1` (not past the
    ///      close time), never past the deposit.
    function _serve(Model memory ch, uint256 t0, uint256 t1) private pure {
        if (!ch.exists) return;
        if (ch.closeAt != 0 && t1 > ch.closeAt) t1 = ch.closeAt;
        if (t1 <= t0 || ch.served >= ch.deposit) return;
        uint256 more = ch.rate * (t1 - t0);
        uint256 left = ch.deposit - ch.served;
        ch.served += more < left ? more : left;
    }

    // ------------------------------------------------------------------ operations

    function _apply(Seq calldata seq, Ctx memory c, Model[2] memory m, Op calldata op) private returns (bool) {
        Model memory ch = m[op.ch % 2];
        if (op.kind == OPEN) return _open(seq, c, ch, op);
        if (op.kind == CLAIM) return _claim(c, ch, op, false);
        if (op.kind == VOUCHER) return _claim(c, ch, op, true);
        if (op.kind == TOPUP) return _topUp(c, ch, op);
        if (op.kind == RATE) return _changeRate(c, m, ch, op);
        if (op.kind == CLOSE) return _requestClose(c, ch);
        if (op.kind == PROVIDER_CLOSE) return _providerClose(c, ch);
        if (op.kind == REFUND) return _refund(seq, c, ch);
        if (op.kind == WITHDRAW) return _withdraw(c, actors[op.who % ACTORS]);
        if (op.kind == WAIVE) return _waive(c, ch, op);
        return _attack(c, ch, op);
    }

    function _quote(Ctx memory c, Model memory ch, uint256 rate, uint32 minNotice)
        private
        view
        returns (Payments.Quote memory q)
    {
        q = Payments.Quote({
            provider: address(c.provider),
            publisher: address(c.publisher),
            podId: ch.podId,
            token: c.token,
            ratePerSecond: rate,
            minNoticeSeconds: minNotice,
            expiry: uint64(payments.fakeNow() + 1 days),
            specHash: keccak256(abi.encode(rate)),
            royaltiesHash: keccak256(abi.encode(_honestRoyalties()))
        });
    }

    /// @dev The list the provider signs: one entry per listing the pod runs, each exactly at its terms.
    function _honestRoyalties() private view returns (Payments.Royalty[] memory list) {
        list = new Payments.Royalty[](_bps.length);
        for (uint256 i = 0; i < _bps.length; ++i) {
            list[i] = Payments.Royalty(_recipients[i], _bps[i], _listingIds[i]);
        }
    }

    /// @dev The list a publisher sends in royalty mode `mode` (the provider signed the honest one, except for
    ///      R_UNQUOTED, where it is signed as sent so the contract's own listing rules are what refuses it).
    function _royaltiesFor(Ctx memory c, uint256 mode) private view returns (Payments.Royalty[] memory list) {
        Payments.Royalty[] memory honest = _honestRoyalties();
        uint256 n = honest.length;
        if (mode == R_FREE_FORM || mode == R_UNQUOTED || (mode == R_DUPLICATE && n > 0)) {
            list = new Payments.Royalty[](n + 1);
            for (uint256 i = 0; i < n; ++i) {
                list[i] = honest[i];
            }
            // The redirect: the publisher's own address takes everything, or a listing appears twice.
            list[n] = mode == R_DUPLICATE ? honest[0] : Payments.Royalty(address(c.publisher), uint16(BPS), 0);
            return list;
        }
        if (mode == R_BPS_OFF && n > 0) honest[0].bps += 1;
        return honest;
    }

    function _open(Seq calldata seq, Ctx memory c, Model memory ch, Op calldata op) private returns (bool) {
        uint256 deposit = op.x % 1e24;
        // A forged quote when `who` picks a third party: the provider never approved it.
        bool honest = address(actors[op.who % ACTORS]) == address(c.provider) || op.who % 3 != 0;
        uint256 mode = (op.who >> 2) % 16;
        bool unbound = op.who >> 5 == 7;
        (bool ok, bytes memory ret) = _callOpen(c, ch, op, deposit, honest, mode, unbound);
        bytes4 want = _openError(seq, c, ch, deposit, honest, mode, unbound);
        _expect(c, "open", want == bytes4(0), ok, ret);
        if (!ok) {
            _expectError(c, ret, want);
            if (mode >= R_FREE_FORM && want != Payments.InvalidQuoteSignature.selector) _stats.royaltyAttacks++;
            if (unbound) _stats.quoteAttacks++;
            return false;
        }
        _checkRoyaltiesStored(c, ch);
        ch.exists = true;
        ch.deposit = deposit;
        ch.rate = op.y % 1e18;
        ch.since = payments.fakeNow();
        ch.notice = op.dt % 7 days;
        _wallet[c.token][address(c.publisher)] -= deposit;
        _held[c.token] += deposit;
        return true;
    }

    function _callOpen(
        Ctx memory c,
        Model memory ch,
        Op calldata op,
        uint256 deposit,
        bool honest,
        uint256 mode,
        bool unbound
    ) private returns (bool ok, bytes memory ret) {
        Payments.Quote memory q = _quote(c, ch, op.y % 1e18, 0);
        Payments.Royalty[] memory royalties = _royaltiesFor(c, mode);
        // Free-form, off-terms and duplicate lists are signed as sent: the contract's listing rules refuse them
        // even when a provider was careless enough to sign.
        if (mode != R_UNQUOTED) q.royaltiesHash = keccak256(abi.encode(royalties));
        if (unbound) q.publisher = address(0);
        // Revoke explicitly: an identical quote may have been approved earlier in the sequence.
        c.provider.approveDigest(payments.quoteDigest(q), honest);
        (ok, ret) = c.publisher.exec(
            address(payments),
            abi.encodeCall(Payments.open, (q, hex"01", ch.podId, deposit, uint32(op.dt % 7 days), royalties))
        );
    }

    /// @dev The error `open` must raise, in the contract's order of checks; zero when it must succeed.
    function _openError(
        Seq calldata seq,
        Ctx memory c,
        Model memory ch,
        uint256 deposit,
        bool honest,
        uint256 mode,
        bool unbound
    ) private view returns (bytes4) {
        uint256 n = seq.bps.length;
        if (unbound) return Payments.QuoteNotBound.selector;
        if (!honest) return Payments.InvalidQuoteSignature.selector;
        if (mode == R_UNQUOTED) return Payments.RoyaltiesNotQuoted.selector;
        if (ch.exists || ch.finalized) return Payments.ChannelExists.selector;
        if (mode == R_FREE_FORM) return Payments.FreeFormRoyalty.selector;
        if (mode == R_DUPLICATE && n > 0) return Payments.DuplicateListing.selector;
        if (mode == R_BPS_OFF && n > 0) return Payments.RoyaltyNotAtListingTerms.selector;
        if (c.royaltyBpsTotal > BPS) return Payments.RoyaltiesExceedTotal.selector;
        // The test token burns 1% (rounded down): amounts below 100 move exactly and are accepted.
        if (c.token == tokens[FEE_ON_TRANSFER] && deposit >= 100) return Payments.UnsupportedToken.selector;
        return bytes4(0);
    }

    /// @dev An open channel's royalties are exactly the listings' terms, nothing else.
    function _checkRoyaltiesStored(Ctx memory c, Model memory ch) private view {
        bytes32 id = payments.channelIdOf(address(c.publisher), address(c.provider), ch.podId);
        _eq(
            c,
            "royalties are the listings' terms",
            uint256(keccak256(abi.encode(_honestRoyalties()))),
            uint256(keccak256(abi.encode(payments.getRoyalties(id))))
        );
    }

    function _accruedAt(Model memory ch, uint256 t) private pure returns (uint256 a) {
        if (ch.closeAt != 0 && t > ch.closeAt) t = ch.closeAt;
        if (t > ch.since) a = ch.rate * (t - ch.since);
        a += ch.accruedBefore;
    }

    function _claim(Ctx memory c, Model memory ch, Op calldata op, bool withVoucher) private returns (bool) {
        uint256 voucher = withVoucher ? op.y % 1e24 : 0;
        uint256 cap = _accruedAt(ch, payments.fakeNow());
        if (voucher > cap) cap = voucher;
        if (cap > ch.deposit) cap = ch.deposit;
        uint256 cumulative = _pickCumulative(ch, op.x, cap);
        // A voucher "signed" by someone other than the publisher when `who` picks a third party.
        Actor signer = withVoucher && op.who % 4 == 0 ? actors[(op.who / 4) % ACTORS] : c.publisher;
        (bool ok, bytes memory ret) = _callClaim(c, ch, cumulative, voucher, signer, withVoucher);
        bool sigOk = address(signer) == address(c.publisher);
        _expect(c, "claim", sigOk && ch.exists && cumulative > ch.claimed && cumulative <= cap, ok, ret);
        if (!ok) {
            if (!sigOk) _expectError(c, ret, Payments.InvalidVoucherSignature.selector);
            else if (!ch.exists) _expectError(c, ret, Payments.ChannelNotFound.selector);
            else if (cumulative <= ch.claimed) _expectError(c, ret, Payments.NothingToClaim.selector);
            else if (cumulative > ch.deposit) _expectError(c, ret, Payments.ClaimExceedsDeposit.selector);
            else _expectError(c, ret, Payments.ClaimExceedsAccrued.selector);
            return false;
        }
        _settle(c, ch, cumulative - ch.claimed);
        ch.claimed = cumulative;
        if (withVoucher && voucher > ch.voucherMax) ch.voucherMax = voucher;
        return true;
    }

    /// @dev Picks the cumulative amount around the interesting edges: the cap, one above, inside, equal, random.
    function _pickCumulative(Model memory ch, uint256 x, uint256 cap) private pure returns (uint256) {
        uint256 mode = x % 5;
        if (mode == 0) return cap;
        if (mode == 1) return cap + 1;
        if (mode == 2) return cap > ch.claimed ? ch.claimed + 1 + (x / 5) % (cap - ch.claimed) : ch.claimed;
        if (mode == 3) return ch.claimed;
        return x / 5;
    }

    function _callClaim(
        Ctx memory c,
        Model memory ch,
        uint256 cumulative,
        uint256 voucher,
        Actor signer,
        bool withVoucher
    ) private returns (bool ok, bytes memory ret) {
        address pub = address(c.publisher);
        if (!withVoucher) {
            return c.provider.exec(address(payments), abi.encodeCall(Payments.claim, (pub, ch.podId, cumulative)));
        }
        bytes32 digest = payments.voucherDigest(pub, address(c.provider), ch.podId, voucher);
        c.publisher.approveDigest(digest, address(signer) == address(c.publisher));
        signer.approveDigest(digest, true);
        return c.provider.exec(
            address(payments),
            abi.encodeCall(Payments.claimWithVoucher, (pub, ch.podId, cumulative, voucher, hex"01"))
        );
    }

    /// @dev The model of the split: each recipient floor(amount x bps / 10000), the provider the rest.
    function _settle(Ctx memory c, Model memory ch, uint256 amount) private {
        uint256 rest = amount;
        for (uint256 i = 0; i < _recipients.length; ++i) {
            uint256 share = amount * _bps[i] / BPS;
            _internal[c.token][_recipients[i]] += share;
            rest -= share;
        }
        _internal[c.token][address(c.provider)] += rest;
        ch.providerPaid += rest;
    }

    function _topUp(Ctx memory c, Model memory ch, Op calldata op) private returns (bool) {
        uint256 amount = op.x % 1e24;
        uint256 nowT = payments.fakeNow();
        bool restarts = ch.exists && amount != 0 && _accruedAt(ch, nowT) >= ch.deposit;
        // A restarting top-up must pay at least the notice period: dust would make the provider restart for nothing.
        bool dust = restarts && ch.closeAt == 0 && amount < ch.rate * ch.notice;
        (bool ok, bytes memory ret) = c.publisher.exec(
            address(payments), abi.encodeCall(Payments.topUp, (address(c.provider), ch.podId, amount))
        );
        bool fot = c.token == tokens[FEE_ON_TRANSFER] && amount >= 100;
        _expect(c, "topUp", ch.exists && ch.closeAt == 0 && !dust && !fot, ok, ret);
        if (!ok) {
            if (dust) {
                _expectError(c, ret, Payments.TopUpTooSmall.selector);
                _stats.dustTopUps++;
            }
            return false;
        }
        // The restart rule: a top-up of a used-up deposit freezes what is owed at the old deposit and restarts
        // accrual now; the stopped time in between is never billed.
        if (restarts) {
            ch.accruedBefore = ch.deposit;
            ch.since = nowT;
            ch.restarts++;
        }
        ch.deposit += amount;
        _wallet[c.token][address(c.publisher)] -= amount;
        _held[c.token] += amount;
        return true;
    }

    /// @dev A rate change with an honest quote, or (by `who`) a quote for the other pod, an unbound one, an expired
    ///      one, or one priced for other royalties than the channel pays: each must be refused.
    function _changeRate(Ctx memory c, Model[2] memory m, Model memory ch, Op calldata op) private returns (bool) {
        uint256 rate = op.y % 1e18;
        uint256 mode = op.who % 8;
        Payments.Quote memory q = _quote(c, ch, rate, uint32(ch.notice));
        bytes4 want;
        if (!ch.exists) want = Payments.ChannelNotFound.selector;
        else if (ch.closeAt != 0) want = Payments.ChannelIsClosing.selector;
        if (mode == Q_FOREIGN_POD) {
            q.podId = m[0].podId == ch.podId ? m[1].podId : m[0].podId;
            if (want == 0) want = Payments.QuoteNotForPod.selector;
        } else if (mode == Q_UNBOUND) {
            q.podId = bytes32(0);
            if (want == 0) want = Payments.QuoteNotBound.selector;
        } else if (mode == Q_EXPIRED) {
            q.expiry = uint64(payments.fakeNow() - 1);
            if (want == 0) want = Payments.QuoteExpired.selector;
        } else if (mode == Q_ROYALTIES) {
            q.royaltiesHash = keccak256(abi.encode(_royaltiesFor(c, R_FREE_FORM)));
            if (want == 0) want = Payments.RoyaltiesNotQuoted.selector;
        }
        c.provider.approveDigest(payments.quoteDigest(q), true);
        (bool ok, bytes memory ret) =
            c.publisher.exec(address(payments), abi.encodeCall(Payments.changeRate, (q, hex"01", ch.podId)));
        _expect(c, "changeRate", want == bytes4(0), ok, ret);
        if (!ok) {
            _expectError(c, ret, want);
            if (mode >= Q_FOREIGN_POD && ch.exists && ch.closeAt == 0) _stats.quoteAttacks++;
            return false;
        }
        uint256 nowT = payments.fakeNow();
        ch.accruedBefore = _accruedAt(ch, nowT);
        ch.since = nowT;
        ch.rate = rate;
        return true;
    }

    function _requestClose(Ctx memory c, Model memory ch) private returns (bool) {
        (bool ok, bytes memory ret) = c.publisher.exec(
            address(payments), abi.encodeCall(Payments.requestClose, (address(c.provider), ch.podId))
        );
        _expect(c, "requestClose", ch.exists && ch.closeAt == 0, ok, ret);
        if (!ok) return false;
        ch.closeAt = payments.fakeNow() + ch.notice;
        return true;
    }

    function _providerClose(Ctx memory c, Model memory ch) private returns (bool) {
        uint256 nowT = payments.fakeNow();
        (bool ok, bytes memory ret) = c.provider.exec(
            address(payments), abi.encodeCall(Payments.providerClose, (address(c.publisher), ch.podId))
        );
        _expect(c, "providerClose", ch.exists && (ch.closeAt == 0 || ch.closeAt > nowT), ok, ret);
        if (!ok) return false;
        ch.closeAt = nowT;
        return true;
    }

    function _refund(Seq calldata, Ctx memory c, Model memory ch) private returns (bool) {
        uint256 nowT = payments.fakeNow();
        uint256 walletBefore = IERC20(c.token).balanceOf(address(c.publisher));
        (bool ok, bytes memory ret) =
            c.publisher.exec(address(payments), abi.encodeCall(Payments.refund, (address(c.provider), ch.podId)));
        _expect(c, "refund", ch.exists && ch.closeAt != 0 && nowT >= ch.closeAt, ok, ret);
        if (!ok) return false;
        uint256 owed = _accruedAt(ch, ch.closeAt);
        if (owed > ch.deposit) owed = ch.deposit;
        if (owed > ch.claimed) {
            _settle(c, ch, owed - ch.claimed);
            ch.claimed = owed;
        }
        uint256 refunded = ch.deposit - ch.claimed;
        // The publisher gets back exactly the deposit minus everything the provider side was paid.
        _eq(c, "refund paid to publisher", refunded, IERC20(c.token).balanceOf(address(c.publisher)) - walletBefore);
        _wallet[c.token][address(c.publisher)] += refunded;
        _held[c.token] -= refunded;
        _paidForService(c, ch, ch.claimed);
        ch.exists = false;
        ch.finalized = true;
        return true;
    }

    /// @dev The provider gives up accrued seconds (at most up to now or the close time); anyone else addresses a
    ///      channel that does not exist.
    function _waive(Ctx memory c, Model memory ch, Op calldata op) private returns (bool) {
        uint256 nowT = payments.fakeNow();
        uint256 end = ch.closeAt != 0 && ch.closeAt < nowT ? ch.closeAt : nowT;
        uint256 maxSeconds = end > ch.since ? end - ch.since : 0;
        uint256 secs = op.x % (maxSeconds + 2);
        bool byProvider = op.who % 4 != 0;
        bool found = ch.exists && (byProvider || address(c.publisher) == address(c.provider));
        if (op.y % 2 == 1 && found && secs <= maxSeconds) return _claimWaiving(c, ch, op, secs);
        Actor who = byProvider ? c.provider : c.publisher;
        (bool ok, bytes memory ret) = who.exec(
            address(payments), abi.encodeCall(Payments.waive, (address(c.publisher), ch.podId, secs))
        );
        _expect(c, "waive", found && secs <= maxSeconds, ok, ret);
        if (!ok) {
            _expectError(c, ret, found ? Payments.WaiveTooLong.selector : Payments.ChannelNotFound.selector);
            return false;
        }
        ch.since += secs;
        _stats.waives++;
        return true;
    }

    /// @dev The daemon's first claim after a start: the waiver and the claim land together or not at all; the
    ///      claim is capped by the accrual after the waiver.
    function _claimWaiving(Ctx memory c, Model memory ch, Op calldata op, uint256 secs) private returns (bool) {
        uint256 oldSince = ch.since;
        ch.since += secs;
        uint256 cap = _accruedAt(ch, payments.fakeNow());
        if (cap > ch.deposit) cap = ch.deposit;
        uint256 cumulative = _pickCumulative(ch, op.x / 7, cap);
        (bool ok, bytes memory ret) = c.provider.exec(
            address(payments),
            abi.encodeCall(Payments.claimWaiving, (address(c.publisher), ch.podId, cumulative, secs))
        );
        _expect(c, "claimWaiving", cumulative > ch.claimed && cumulative <= cap, ok, ret);
        if (!ok) {
            ch.since = oldSince;
            if (cumulative <= ch.claimed) _expectError(c, ret, Payments.NothingToClaim.selector);
            else if (cumulative > ch.deposit) _expectError(c, ret, Payments.ClaimExceedsDeposit.selector);
            else _expectError(c, ret, Payments.ClaimExceedsAccrued.selector);
            return false;
        }
        _settle(c, ch, cumulative - ch.claimed);
        ch.claimed = cumulative;
        _stats.waives++;
        return true;
    }

    function _withdraw(Ctx memory c, Actor who) private returns (bool) {
        uint256 owed = _internal[c.token][address(who)];
        (bool ok, bytes memory ret) = who.exec(address(payments), abi.encodeCall(Payments.withdraw, (c.token)));
        _expect(c, "withdraw", owed != 0, ok, ret);
        if (!ok) return false;
        _internal[c.token][address(who)] = 0;
        _wallet[c.token][address(who)] += owed;
        _held[c.token] -= owed;
        return true;
    }

    /// @dev Someone who is neither the publisher nor the provider (or a party in the wrong role) tries to act on
    ///      the channel. Channel ids derive from msg.sender, so every such call must find no channel.
    function _attack(Ctx memory c, Model memory ch, Op calldata op) private returns (bool) {
        Actor who = actors[op.who % ACTORS];
        address pub = address(c.publisher);
        address prov = address(c.provider);
        bytes32 pod = ch.podId;
        bytes memory data;
        uint256 k = op.x % 4;
        if (address(who) == address(c.publisher)) {
            // the publisher tries provider actions
            if (k == 0) data = abi.encodeCall(Payments.claim, (pub, pod, 1));
            else if (k == 1) data = abi.encodeCall(Payments.providerClose, (pub, pod));
            else if (k == 2) data = abi.encodeCall(Payments.claimWithVoucher, (pub, pod, 1, 1, hex"01"));
            else data = abi.encodeCall(Payments.claim, (prov, pod, 1));
        } else if (address(who) == address(c.provider)) {
            // the provider tries publisher actions
            if (k == 0) data = abi.encodeCall(Payments.requestClose, (prov, pod));
            else if (k == 1) data = abi.encodeCall(Payments.refund, (prov, pod));
            else if (k == 2) data = abi.encodeCall(Payments.topUp, (prov, pod, 1));
            else data = abi.encodeCall(Payments.refund, (pub, pod));
        } else {
            // a stranger tries both sides
            if (k == 0) data = abi.encodeCall(Payments.claim, (pub, pod, 1));
            else if (k == 1) data = abi.encodeCall(Payments.refund, (prov, pod));
            else if (k == 2) data = abi.encodeCall(Payments.requestClose, (prov, pod));
            else data = abi.encodeCall(Payments.providerClose, (pub, pod));
        }
        (bool ok, bytes memory ret) = who.exec(address(payments), data);
        if (ok) revert Violation(c.seq, c.step, "someone acted for another party", 0, 1);
        // Channel ids derive from msg.sender, so the wrong party always addresses a channel that does not exist
        // (a voucher claim is refused even earlier: nobody signed a voucher for that key).
        bool voucherAttempt = address(who) == address(c.publisher) && k == 2;
        _expectError(c, ret, voucherAttempt ? Payments.InvalidVoucherSignature.selector : Payments.ChannelNotFound.selector);
        return false;
    }

    // ------------------------------------------------------------------ checks

    function _expect(Ctx memory c, string memory what, bool expected, bool actual, bytes memory ret) private pure {
        if (expected != actual) {
            bytes4 sel;
            if (ret.length >= 4) sel = bytes4(ret);
            revert Violation(c.seq, c.step, what, expected ? 1 : 0, uint256(uint32(sel)));
        }
    }

    function _expectError(Ctx memory c, bytes memory ret, bytes4 expected) private pure {
        bytes4 sel;
        if (ret.length >= 4) sel = bytes4(ret);
        if (sel != expected) revert Violation(c.seq, c.step, "wrong error", uint32(expected), uint32(sel));
    }

    function _eq(Ctx memory c, string memory what, uint256 expected, uint256 actual) private pure {
        if (expected != actual) revert Violation(c.seq, c.step, what, expected, actual);
    }

    function _checkInvariants(Ctx memory c, Model[2] memory m) private view {
        IERC20 token = IERC20(c.token);
        // Tokens are conserved: Payments holds exactly the open deposits' unclaimed part plus internal balances.
        _eq(c, "payments token balance", _held[c.token], token.balanceOf(address(payments)));
        uint256 sum = token.balanceOf(address(payments));
        for (uint256 i = 0; i < ACTORS; ++i) {
            address a = address(actors[i]);
            _eq(c, "internal balance", _internal[c.token][a], payments.balanceOf(a, c.token));
            uint256 w = token.balanceOf(a);
            _eq(c, "wallet balance", _wallet[c.token][a], w);
            sum += w;
        }
        if (c.token != tokens[FEE_ON_TRANSFER]) _eq(c, "total supply conserved", _minted[c.token], sum);
        for (uint256 k = 0; k < 2; ++k) {
            Model memory ch = m[k];
            Payments.ChannelView memory v = payments.getChannel(address(c.publisher), address(c.provider), ch.podId);
            _eq(c, "channel exists", ch.exists ? 1 : 0, v.exists ? 1 : 0);
            if (!ch.exists) continue;
            _eq(c, "deposit", ch.deposit, v.deposit);
            _eq(c, "claimed", ch.claimed, v.claimed);
            _eq(c, "closeAt", ch.closeAt, v.closeAt);
            _eq(c, "since", ch.since, v.since);
            _eq(c, "accruedBefore", ch.accruedBefore, v.accruedBefore);
            // The provider side never got more than the deposit...
            if (v.claimed > v.deposit) revert Violation(c.seq, c.step, "claimed above deposit", v.deposit, v.claimed);
            // ...nor more than the service the publisher got (or signed a voucher for).
            _paidForService(c, ch, v.claimed);
            // The provider's floor: of everything claimed, its share is at least (1 - the listings' royalties).
            if (ch.providerPaid * BPS < ch.claimed * (BPS - c.royaltyBpsTotal)) {
                revert Violation(c.seq, c.step, "provider paid below its share", ch.claimed, ch.providerPaid);
            }
        }
    }

    /// @dev "The publisher never pays for more than it got": what went to the provider and the royalties is at
    ///      most rate x the seconds the channel was funded, unless the publisher signed a voucher for more.
    function _paidForService(Ctx memory c, Model memory ch, uint256 paid) private pure {
        uint256 bound = ch.served > ch.voucherMax ? ch.served : ch.voucherMax;
        if (paid > bound) revert Violation(c.seq, c.step, "paid for more than the service", bound, paid);
    }
}
