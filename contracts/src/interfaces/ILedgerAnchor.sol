// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ILedgerAnchor
/// @notice Append-only anchoring of RFC 9162 Merkle log heads: a new head is accepted only with a
///         consistency proof from the last anchored one.
interface ILedgerAnchor {
    /// @notice One log head of a batch (`anchorBatch`): the arguments of `anchor`.
    struct Head {
        bytes32 logId;
        uint64 treeSize;
        bytes32 rootHash;
        bytes32[] proof;
    }

    /// @notice The log `logId` now has `treeSize` leaves and root `rootHash`.
    event Anchored(bytes32 indexed logId, uint64 treeSize, bytes32 rootHash);
    /// @notice The operator of `logId` changed (from zero on its first anchor).
    event OperatorTransferred(bytes32 indexed logId, address indexed previousOperator, address indexed newOperator);

    /// @notice `caller` is not `operator`, the only account that may anchor or hand over `logId`
    ///         (before the first anchor: the account named by the id's first 20 bytes).
    error LedgerAnchorUnauthorized(bytes32 logId, address caller, address operator);
    /// @notice A tree of zero leaves has nothing to anchor.
    error LedgerAnchorEmptyTree(bytes32 logId);
    /// @notice `treeSize` is not larger than the anchored `anchoredSize` (equal sizes are rejected too).
    error LedgerAnchorNotGrowing(bytes32 logId, uint64 anchoredSize, uint64 treeSize);
    /// @notice The proof does not show the tree of `treeSize` extends the anchored tree of `anchoredSize`
    ///         (for a first anchor, `anchoredSize` is 0 and the proof must be empty).
    error LedgerAnchorInvalidProof(bytes32 logId, uint64 anchoredSize, uint64 treeSize);
    /// @notice The new operator may not be the zero address.
    error LedgerAnchorZeroOperator(bytes32 logId);
    /// @notice A batch of no heads anchors nothing.
    error LedgerAnchorEmptyBatch();

    /// @notice Anchors the head (`treeSize`, `rootHash`) of log `logId`. The first anchor of a log
    ///         takes an empty proof, may only come from the account whose address is the id's first
    ///         20 bytes, and makes it the log's operator; later anchors only by the operator, with an
    ///         RFC 9162 §2.1.4.2 consistency proof from the latest head.
    function anchor(bytes32 logId, uint64 treeSize, bytes32 rootHash, bytes32[] calldata proof) external;

    /// @notice Anchors several heads in one transaction (e.g. the newest root of every shard of a
    ///         deployment that grew), each exactly as `anchor` would, in order: each with its own
    ///         operator check and consistency proof from its log's latest head, each emitting its own
    ///         events. Any head refused reverts the whole batch with that head's error.
    function anchorBatch(Head[] calldata heads) external;

    /// @notice The latest anchored head of `logId`; (0, 0) when never anchored.
    function latest(bytes32 logId) external view returns (uint64 treeSize, bytes32 rootHash);

    /// @notice The account allowed to anchor `logId`; zero when never anchored (then only the account
    ///         named by the id's first 20 bytes may claim it).
    function operatorOf(bytes32 logId) external view returns (address);

    /// @notice Hands `logId` over to `newOperator` (e.g. a rotated anchoring key). Operator only.
    function transferOperator(bytes32 logId, address newOperator) external;

    /// @notice RFC 9162 §2.1.4.2 verification, for auditors (`eth_call`) and tests: whether `proof`
    ///         shows (size2, root2) extends (size1, root1). Equal sizes need equal roots and an empty
    ///         proof; size1 = 0 (the empty tree) and size1 > size2 never verify.
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        external
        view
        returns (bool);
}
