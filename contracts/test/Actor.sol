// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice A party in the fuzz harness: it calls contracts as itself and "signs" (ERC-1271) only the digests its
///         owner approved. `trusted` (a malicious token under test) may also make it call out, to model re-entry.
contract Actor {
    bytes4 private constant MAGIC = 0x1626ba7e;
    address public immutable owner;
    address public trusted;
    mapping(bytes32 digest => bool) public approved;

    constructor() {
        owner = msg.sender;
    }

    function setTrusted(address t) external {
        require(msg.sender == owner, "owner only");
        trusted = t;
    }

    function approveDigest(bytes32 digest, bool ok) external {
        require(msg.sender == owner, "owner only");
        approved[digest] = ok;
    }

    function exec(address to, bytes calldata data) external returns (bool ok, bytes memory ret) {
        require(msg.sender == owner || msg.sender == trusted, "not allowed");
        (ok, ret) = to.call(data);
    }

    /// @notice Like exec, but bubbles up a failure (so a caller can tell whether the inner call worked).
    function execStrict(address to, bytes calldata data) external returns (bytes memory ret) {
        require(msg.sender == owner || msg.sender == trusted, "not allowed");
        bool ok;
        (ok, ret) = to.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function isValidSignature(bytes32 digest, bytes calldata) external view returns (bytes4) {
        return approved[digest] ? MAGIC : bytes4(0xffffffff);
    }
}
