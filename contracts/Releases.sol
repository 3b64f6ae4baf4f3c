// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Releases: the provider releases a network trusts, published by k of n release signers.
/// @notice A release names a version of the provider stack, the digest of its VM image and the launch
///         measurements that image produces under each TEE and configuration. Publishers accept a provider only
///         when its evidence carries a measurement of a published, non-revoked release.
///
///         Who decides: a set of at most 16 release signers and a threshold k. Publishing widens what every
///         publisher trusts, so it takes k approvals: one stolen signer key cannot make a backdoored image
///         trusted. Revoking only narrows trust and must be fast when an image turns out bad, so any one signer
///         may revoke at once. Changing the signers or the threshold takes k approvals too. Every approval and
///         every change is an event, and pending approvals are forgotten whenever the signer set changes.
///
///         A signer that revokes good releases out of malice can be voted out by the others, who then publish
///         the same measurements again under a new version: a measurement is refused only while a non-revoked
///         release holds it.
contract Releases {
    uint8 public constant TEE_SNP = 1;
    uint8 public constant TEE_TDX = 2;
    uint8 public constant TEE_SGX = 3;
    /// @notice No TEE at all: only a devnet publishes such a release, and publishers refuse insecure-dev evidence
    ///         on every other network whatever this contract says.
    uint8 public constant TEE_INSECURE_DEV = 4;

    uint256 public constant MAX_SIGNERS = 16;
    uint256 public constant MAX_MEASUREMENTS = 16;
    uint256 public constant MAX_SHORT_STRING_BYTES = 64;
    uint256 public constant MAX_LONG_STRING_BYTES = 256;

    bytes32 private constant RELEASE_TAG = keccak256("trusted-pods/release/v1");
    bytes32 private constant SIGNERS_TAG = keccak256("trusted-pods/release-signers/v1");

    enum Status {
        None,
        Published,
        Revoked
    }

    /// @notice One measured configuration. `value` is, per TEE: SEV-SNP the 48-byte MEASUREMENT; TDX the MRTD
    ///         followed by RTMR0, RTMR1 and RTMR2 (4 x 48 bytes: firmware, its configuration, kernel, command
    ///         line and initrd); SGX the 32-byte MRENCLAVE; insecure-dev the 32-byte label of its evidence.
    struct Measurement {
        uint8 tee;
        /// e.g. "milan, 4 vCPU, OVMF 2024.05"
        string config;
        bytes value;
        /// SHA-256 of the firmware binary the measurement was computed with (zero when there is none), so a
        /// rebuilder can check the same firmware.
        bytes32 firmware;
    }

    struct ReleaseInput {
        string version;
        /// SHA-256 of the provider VM image.
        bytes32 imageDigest;
        /// Where to rebuild it from (e.g. a git URL and commit); informational.
        string source;
        Measurement[] measurements;
    }

    struct Release {
        bytes32 id;
        string version;
        bytes32 imageDigest;
        string source;
        Measurement[] measurements;
        Status status;
        uint64 publishedAt;
        uint64 revokedAt;
        address revokedBy;
        string revokeReason;
    }

    address[] private _signers;
    mapping(address signer => uint256) private _signerIndexPlusOne;
    uint8 private _threshold;
    uint64 private _epoch;
    /// One bit per signer index, per action and signer epoch: a new signer set starts from no approvals.
    mapping(bytes32 action => mapping(uint64 epoch => uint256 bitmap)) private _approvals;

    bytes32[] private _ids;
    mapping(bytes32 id => Release) private _releases;
    mapping(bytes32 measurementKey => bytes32 id) private _releaseOf;
    mapping(bytes32 versionHash => bytes32 id) private _versionOf;

    event SignersChanged(uint64 indexed epoch, address[] signers, uint8 threshold);
    event Approved(bytes32 indexed action, address indexed signer, uint256 approvals, uint256 threshold);
    event ReleasePublished(bytes32 indexed id, string version, bytes32 imageDigest);
    event ReleaseRevoked(bytes32 indexed id, address indexed signer, string reason);

    error NotSigner(address account);
    error AlreadyApproved(bytes32 action, address signer);
    error BadThreshold(uint256 threshold, uint256 signers);
    error BadSigner(address signer);
    error ReleaseExists(bytes32 id, Status status);
    error UnknownRelease(bytes32 id);
    error AlreadyRevoked(bytes32 id);
    error EmptyVersion();
    error VersionTaken(string version, bytes32 id);
    error ZeroImageDigest();
    error NoMeasurements();
    error ListTooLong(string field, uint256 length, uint256 maxLength);
    error StringTooLong(string field, uint256 length, uint256 maxLength);
    error UnknownTee(uint8 tee);
    error BadMeasurementLength(uint8 tee, uint256 length, uint256 expected);
    error MeasurementPublished(bytes32 key, bytes32 id);

    constructor(address[] memory signers_, uint8 threshold_) {
        _setSigners(signers_, threshold_);
    }

    // ------------------------------------------------------------------------------------------ signers

    /// @notice Approves (and, at the k-th approval, applies) a new signer set and threshold.
    /// @return changed Whether this approval reached the threshold.
    function changeSigners(address[] calldata signers_, uint8 threshold_) external returns (bool changed) {
        _checkSigners(signers_, threshold_);
        if (_approve(signersAction(signers_, threshold_)) < _threshold) return false;
        _setSigners(signers_, threshold_);
        return true;
    }

    function signersAction(address[] calldata signers_, uint8 threshold_) public pure returns (bytes32) {
        return keccak256(abi.encode(SIGNERS_TAG, signers_, threshold_));
    }

    function signers() external view returns (address[] memory) {
        return _signers;
    }

    function threshold() external view returns (uint8) {
        return _threshold;
    }

    /// @notice Incremented at every signer change; approvals count within one epoch only.
    function epoch() external view returns (uint64) {
        return _epoch;
    }

    function isSigner(address account) external view returns (bool) {
        return _signerIndexPlusOne[account] != 0;
    }

    /// @notice Approvals an action (a release id or a signers action) holds from the current signers.
    function approvalsOf(bytes32 action) external view returns (uint256 count, address[] memory approvedBy) {
        uint256 bitmap = _approvals[action][_epoch];
        count = _popcount(bitmap);
        approvedBy = new address[](count);
        uint256 j;
        for (uint256 i = 0; i < _signers.length; ++i) {
            if (bitmap & (1 << i) != 0) approvedBy[j++] = _signers[i];
        }
    }

    // ----------------------------------------------------------------------------------------- releases

    /// @notice Approves a release; the k-th approval of the same input publishes it. Each signer sends the same
    ///         input (its id is its hash), so approvals before the last store nothing but a bit.
    /// @return id The release id.
    /// @return published Whether this approval published it.
    function publish(ReleaseInput calldata input) external returns (bytes32 id, bool published) {
        id = releaseId(input);
        Status status = _releases[id].status;
        if (status != Status.None) revert ReleaseExists(id, status);
        _validate(input);
        if (_approve(id) < _threshold) return (id, false);
        _store(id, input);
        emit ReleasePublished(id, input.version, input.imageDigest);
        return (id, true);
    }

    /// @notice Any one signer revokes a release at once: publishers refuse its measurements from then on.
    function revoke(bytes32 id, string calldata reason) external {
        if (_signerIndexPlusOne[msg.sender] == 0) revert NotSigner(msg.sender);
        if (bytes(reason).length > MAX_LONG_STRING_BYTES)
            revert StringTooLong("reason", bytes(reason).length, MAX_LONG_STRING_BYTES);
        Release storage r = _releases[id];
        if (r.status == Status.None) revert UnknownRelease(id);
        if (r.status == Status.Revoked) revert AlreadyRevoked(id);
        r.status = Status.Revoked;
        r.revokedAt = uint64(block.timestamp);
        r.revokedBy = msg.sender;
        r.revokeReason = reason;
        emit ReleaseRevoked(id, msg.sender, reason);
    }

    function releaseId(ReleaseInput calldata input) public pure returns (bytes32) {
        return keccak256(abi.encode(RELEASE_TAG, input));
    }

    function measurementKey(uint8 tee, bytes calldata value) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(tee, value));
    }

    /// @notice The latest release that published this measurement (zero when none did); check its status.
    function releaseOf(uint8 tee, bytes calldata value) external view returns (bytes32) {
        return _releaseOf[measurementKey(tee, value)];
    }

    function getRelease(bytes32 id) external view returns (Release memory) {
        if (_releases[id].status == Status.None) revert UnknownRelease(id);
        return _releases[id];
    }

    function releaseCount() external view returns (uint256) {
        return _ids.length;
    }

    /// @notice A page of releases in publication order.
    function listReleases(uint256 offset, uint256 limit) external view returns (Release[] memory page) {
        uint256 n = _ids.length;
        if (offset >= n) return new Release[](0);
        uint256 end = offset + limit > n ? n : offset + limit;
        page = new Release[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _releases[_ids[i]];
        }
    }

    // ---------------------------------------------------------------------------------------- internals

    function _approve(bytes32 action) private returns (uint256 count) {
        uint256 indexPlusOne = _signerIndexPlusOne[msg.sender];
        if (indexPlusOne == 0) revert NotSigner(msg.sender);
        uint256 bit = 1 << (indexPlusOne - 1);
        uint256 bitmap = _approvals[action][_epoch];
        if (bitmap & bit != 0) revert AlreadyApproved(action, msg.sender);
        bitmap |= bit;
        _approvals[action][_epoch] = bitmap;
        count = _popcount(bitmap);
        emit Approved(action, msg.sender, count, _threshold);
    }

    function _checkSigners(address[] memory signers_, uint8 threshold_) private pure {
        uint256 n = signers_.length;
        if (n > MAX_SIGNERS) revert ListTooLong("signers", n, MAX_SIGNERS);
        if (threshold_ == 0 || threshold_ > n) revert BadThreshold(threshold_, n);
        for (uint256 i = 0; i < n; ++i) {
            if (signers_[i] == address(0)) revert BadSigner(signers_[i]);
            for (uint256 j = 0; j < i; ++j) {
                if (signers_[j] == signers_[i]) revert BadSigner(signers_[i]);
            }
        }
    }

    function _setSigners(address[] memory signers_, uint8 threshold_) private {
        _checkSigners(signers_, threshold_);
        for (uint256 i = 0; i < _signers.length; ++i) {
            delete _signerIndexPlusOne[_signers[i]];
        }
        delete _signers;
        for (uint256 i = 0; i < signers_.length; ++i) {
            _signers.push(signers_[i]);
            _signerIndexPlusOne[signers_[i]] = i + 1;
        }
        _threshold = threshold_;
        uint64 next = _epoch + 1;
        _epoch = next;
        emit SignersChanged(next, signers_, threshold_);
    }

    function _validate(ReleaseInput calldata input) private pure {
        uint256 v = bytes(input.version).length;
        if (v == 0) revert EmptyVersion();
        if (v > MAX_SHORT_STRING_BYTES) revert StringTooLong("version", v, MAX_SHORT_STRING_BYTES);
        if (input.imageDigest == bytes32(0)) revert ZeroImageDigest();
        if (bytes(input.source).length > MAX_LONG_STRING_BYTES)
            revert StringTooLong("source", bytes(input.source).length, MAX_LONG_STRING_BYTES);
        uint256 n = input.measurements.length;
        if (n == 0) revert NoMeasurements();
        if (n > MAX_MEASUREMENTS) revert ListTooLong("measurements", n, MAX_MEASUREMENTS);
        for (uint256 i = 0; i < n; ++i) {
            Measurement calldata m = input.measurements[i];
            if (bytes(m.config).length > MAX_SHORT_STRING_BYTES)
                revert StringTooLong("config", bytes(m.config).length, MAX_SHORT_STRING_BYTES);
            uint256 expected = _valueLength(m.tee);
            if (m.value.length != expected) revert BadMeasurementLength(m.tee, m.value.length, expected);
        }
    }

    function _valueLength(uint8 tee) private pure returns (uint256) {
        if (tee == TEE_SNP) return 48;
        if (tee == TEE_TDX) return 192;
        if (tee == TEE_SGX || tee == TEE_INSECURE_DEV) return 32;
        revert UnknownTee(tee);
    }

    function _store(bytes32 id, ReleaseInput calldata input) private {
        bytes32 versionHash = keccak256(bytes(input.version));
        bytes32 holder = _versionOf[versionHash];
        if (holder != bytes32(0)) revert VersionTaken(input.version, holder);
        _versionOf[versionHash] = id;
        Release storage r = _releases[id];
        r.id = id;
        r.version = input.version;
        r.imageDigest = input.imageDigest;
        r.source = input.source;
        r.status = Status.Published;
        r.publishedAt = uint64(block.timestamp);
        for (uint256 i = 0; i < input.measurements.length; ++i) {
            Measurement calldata m = input.measurements[i];
            bytes32 key = measurementKey(m.tee, m.value);
            bytes32 current = _releaseOf[key];
            // Within this release too: `current == id` after an earlier entry with the same value.
            if (current != bytes32(0) && _releases[current].status != Status.Revoked) {
                revert MeasurementPublished(key, current);
            }
            _releaseOf[key] = id;
            r.measurements.push(m);
        }
        _ids.push(id);
    }

    function _popcount(uint256 x) private pure returns (uint256 count) {
        while (x != 0) {
            x &= x - 1;
            ++count;
        }
    }
}
