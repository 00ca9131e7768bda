// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice A small, deliberately naive RFC 9162 §2.1 Merkle tree for tests: roots (MTH) and
///         consistency proofs (PROOF/SUBPROOF, §2.1.4.1), written from the RFC's definitions and
///         independent of the contract's verifier. Leaves are either seeded pseudo-random hashes or,
///         in "uniform" mode, all equal so that huge trees (millions of leaves) cost O(log² n).
abstract contract MerkleTreeBuilder {
    bytes32 private _seed;
    bool private _uniform;
    bytes[] private _inputs;

    function _useSeed(bytes32 seed) internal {
        _seed = seed;
        _uniform = false;
        delete _inputs;
    }

    function _useUniform() internal {
        _uniform = true;
        delete _inputs;
    }

    /// @dev Leaves from explicit inputs (leaf hash = SHA-256(0x00 ‖ input)).
    function _useInputs(bytes[] memory inputs) internal {
        _uniform = false;
        delete _inputs;
        for (uint256 i; i < inputs.length; ++i) _inputs.push(inputs[i]);
    }

    function _leafHash(uint256 index) internal view returns (bytes32) {
        if (_inputs.length != 0) return sha256(abi.encodePacked(bytes1(0x00), _inputs[index]));
        if (_uniform) return sha256(abi.encodePacked(bytes1(0x00), "carchain"));
        return sha256(abi.encodePacked(bytes1(0x00), abi.encode(_seed, index)));
    }

    function _nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// @dev The largest power of two smaller than n (n > 1).
    function _split(uint256 n) internal pure returns (uint256 k) {
        k = 1;
        while (k << 1 < n) k <<= 1;
    }

    /// @dev MTH(D[lo:hi]).
    function _mth(uint256 lo, uint256 hi) internal view returns (bytes32) {
        uint256 n = hi - lo;
        if (n == 0) return sha256("");
        if (_uniform) return _mthUniform(n);
        if (n == 1) return _leafHash(lo);
        uint256 k = _split(n);
        return _nodeHash(_mth(lo, lo + k), _mth(lo + k, hi));
    }

    function _root(uint256 size) internal view returns (bytes32) {
        return _mth(0, size);
    }

    /// @dev With equal leaves, a perfect subtree of 2^j leaves hashes j times over itself.
    function _mthUniform(uint256 n) private view returns (bytes32 hash) {
        if (n & (n - 1) == 0) {
            hash = _leafHash(0);
            for (uint256 size = 1; size < n; size <<= 1) hash = _nodeHash(hash, hash);
            return hash;
        }
        uint256 k = _split(n);
        return _nodeHash(_mthUniform(k), _mthUniform(n - k));
    }

    /// @dev PROOF(m, D[n]) for 0 < m <= n.
    function _consistencyProof(uint256 m, uint256 n) internal view returns (bytes32[] memory proof) {
        proof = new bytes32[](128);
        uint256 length = _subproof(m, 0, n, true, proof, 0);
        assembly {
            mstore(proof, length)
        }
    }

    function _subproof(uint256 m, uint256 lo, uint256 hi, bool complete, bytes32[] memory out, uint256 length)
        private
        view
        returns (uint256)
    {
        uint256 n = hi - lo;
        if (m == n) {
            if (!complete) out[length++] = _mth(lo, hi);
            return length;
        }
        uint256 k = _split(n);
        if (m <= k) {
            length = _subproof(m, lo, lo + k, complete, out, length);
            out[length++] = _mth(lo + k, hi);
        } else {
            length = _subproof(m - k, lo + k, hi, false, out, length);
            out[length++] = _mth(lo, lo + k);
        }
        return length;
    }
}
