// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ILedgerAnchor} from "./interfaces/ILedgerAnchor.sol";
import {MerkleConsistency} from "./libraries/MerkleConsistency.sol";

/// @title LedgerAnchor
/// @notice Records the heads of Carchain's RFC 9162 Merkle logs so that anyone can check an event
///         against Ethereum without trusting the node; the chain itself enforces append-only, as a
///         head is accepted only with a consistency proof from the previous one.
/// @dev Operator rule: a log id names the account that may claim it — its first 20 bytes are that
///      account's address (the other 12 are the operator's choice). Only that account can anchor
///      the log first and so become its operator; from then on only the operator may anchor it (or
///      hand it over with `transferOperator`, e.g. to a rotated key). Log ids are public, so a
///      first-come rule would let anyone squat an operator's id before its first anchor and stop its
///      anchoring for good; binding the id to its claimant makes that impossible.
///      Sizes strictly grow: re-anchoring the current size (even with the same root) is rejected,
///      so every `Anchored` event is news and a retried transaction fails loudly and cheaply.
contract LedgerAnchor is ILedgerAnchor {
    /// @dev Two slots: operator and size share one, so an anchor writes two slots.
    struct LogHead {
        address operator;
        uint64 treeSize;
        bytes32 rootHash;
    }

    mapping(bytes32 logId => LogHead) private _logs;

    /// @inheritdoc ILedgerAnchor
    function anchor(bytes32 logId, uint64 treeSize, bytes32 rootHash, bytes32[] calldata proof) external {
        _anchor(logId, treeSize, rootHash, proof);
    }

    /// @inheritdoc ILedgerAnchor
    function anchorBatch(Head[] calldata heads) external {
        uint256 count = heads.length;
        if (count == 0) revert LedgerAnchorEmptyBatch();
        for (uint256 i = 0; i < count; ++i) {
            Head calldata next = heads[i];
            _anchor(next.logId, next.treeSize, next.rootHash, next.proof);
        }
    }

    /// @dev One head, with every rule of `anchor`: the claimant or operator only, a growing size,
    ///      and a consistency proof from the latest anchored head.
    function _anchor(bytes32 logId, uint64 treeSize, bytes32 rootHash, bytes32[] calldata proof) private {
        LogHead storage head = _logs[logId];
        address operator = head.operator;
        if (operator == address(0)) {
            // Taking the first 20 bytes is the rule itself: the id names its claimant there.
            // forge-lint: disable-next-line(unsafe-typecast)
            address claimant = address(bytes20(logId));
            if (msg.sender != claimant) revert LedgerAnchorUnauthorized(logId, msg.sender, claimant);
            if (treeSize == 0) revert LedgerAnchorEmptyTree(logId);
            if (proof.length != 0) revert LedgerAnchorInvalidProof(logId, 0, treeSize);
            head.operator = msg.sender;
            head.treeSize = treeSize;
            head.rootHash = rootHash;
            emit OperatorTransferred(logId, address(0), msg.sender);
        } else {
            if (msg.sender != operator) revert LedgerAnchorUnauthorized(logId, msg.sender, operator);
            uint64 anchoredSize = head.treeSize;
            if (treeSize <= anchoredSize) revert LedgerAnchorNotGrowing(logId, anchoredSize, treeSize);
            if (!MerkleConsistency.verify(anchoredSize, treeSize, head.rootHash, rootHash, proof)) {
                revert LedgerAnchorInvalidProof(logId, anchoredSize, treeSize);
            }
            head.treeSize = treeSize;
            head.rootHash = rootHash;
        }
        emit Anchored(logId, treeSize, rootHash);
    }

    /// @inheritdoc ILedgerAnchor
    function transferOperator(bytes32 logId, address newOperator) external {
        address operator = _logs[logId].operator;
        // msg.sender is never zero, so this also refuses logs that have no operator yet.
        if (msg.sender != operator) revert LedgerAnchorUnauthorized(logId, msg.sender, operator);
        if (newOperator == address(0)) revert LedgerAnchorZeroOperator(logId);
        _logs[logId].operator = newOperator;
        emit OperatorTransferred(logId, operator, newOperator);
    }

    /// @inheritdoc ILedgerAnchor
    function latest(bytes32 logId) external view returns (uint64 treeSize, bytes32 rootHash) {
        LogHead storage head = _logs[logId];
        return (head.treeSize, head.rootHash);
    }

    /// @inheritdoc ILedgerAnchor
    function operatorOf(bytes32 logId) external view returns (address) {
        return _logs[logId].operator;
    }

    /// @inheritdoc ILedgerAnchor
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        // A proof from the empty tree is meaningless (RFC 9162 defines PROOF for 0 < m); refuse it
        // as transparency-dev/merkle does, even between two empty trees.
        if (size1 == 0 || size1 > size2) return false;
        if (size1 == size2) return proof.length == 0 && root1 == root2;
        return MerkleConsistency.verify(size1, size2, root1, root2, proof);
    }
}
