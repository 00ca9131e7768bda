// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title MerkleConsistency
/// @notice Verifies RFC 9162 §2.1.4.2 consistency proofs between two Merkle tree heads (SHA-256,
///         node hash = SHA-256(0x01 ‖ left ‖ right), as Certificate Transparency v2 and Carchain's log).
library MerkleConsistency {
    /// @notice Whether `proof` shows that the tree of `size2` leaves with root `root2` extends the
    ///         tree of `size1` leaves with root `root1`, for 0 < size1 < size2 (callers handle
    ///         equal sizes and the empty tree, whose answers need no proof).
    /// @dev The RFC 9162 §2.1.4.2 algorithm, step by step: fn/sn walk the paths of the last leaf of
    ///      the old and the new tree towards the root; `fr` rebuilds the old root, `sr` the new one.
    function verify(uint256 size1, uint256 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        internal
        view
        returns (bool)
    {
        uint256 length = proof.length;
        if (length == 0) return false; // step 1
        bytes32 fr;
        uint256 i;
        // unchecked: size1 > 0 (caller's precondition) so size1 - 1 and size2 - 1 cannot underflow;
        // i < length <= 2^64 cannot overflow; shifts never overflow.
        unchecked {
            uint256 fn = size1 - 1; // step 3
            uint256 sn = size2 - 1;
            if (size1 & fn == 0) {
                // step 2: size1 is a power of two, so its root is a node of the new tree: prepend it.
                fr = root1;
            } else {
                fr = proof[0];
                i = 1;
            }
            bytes32 sr = fr; // step 5
            while (fn & 1 == 1) {
                // step 4
                fn >>= 1;
                sn >>= 1;
            }
            for (; i < length; ++i) {
                // step 6
                if (sn == 0) return false;
                bytes32 c = proof[i];
                if (fn & 1 == 1 || fn == sn) {
                    fr = _node(c, fr);
                    sr = _node(c, sr);
                    if (fn & 1 == 0) {
                        while (fn & 1 == 0 && fn != 0) {
                            fn >>= 1;
                            sn >>= 1;
                        }
                    }
                } else {
                    sr = _node(sr, c);
                }
                fn >>= 1;
                sn >>= 1;
            }
            return fr == root1 && sr == root2 && sn == 0; // step 7
        }
    }

    /// @dev SHA-256(0x01 ‖ left ‖ right) through the precompile at 0x02, without allocating: the 65
    ///      input bytes are written past the free memory pointer (not reserved, only read by the
    ///      precompile before the next write) and the output lands in scratch space 0x00-0x1f.
    ///      The precompile cannot fail on 65 bytes except by running out of gas; revert then.
    function _node(bytes32 left, bytes32 right) private view returns (bytes32 hash) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            mstore(add(ptr, 0x01), left)
            mstore(add(ptr, 0x21), right)
            if iszero(staticcall(gas(), 0x02, ptr, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
            hash := mload(0x00)
        }
    }
}
