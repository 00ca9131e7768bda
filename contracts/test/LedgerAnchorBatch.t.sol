// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {MerkleTreeBuilder} from "./utils/MerkleTreeBuilder.sol";
import {LedgerAnchor} from "../src/LedgerAnchor.sol";
import {ILedgerAnchor} from "../src/interfaces/ILedgerAnchor.sol";

/// @notice `anchorBatch`: the newest root of several logs (a deployment's shards) in one
///         transaction, each head under every rule of `anchor`, all or nothing.
contract LedgerAnchorBatchTest is Test, MerkleTreeBuilder {
    LedgerAnchor private anchors;
    address private operator = address(0x0A);
    address private stranger = address(0x05);

    function setUp() public {
        anchors = new LedgerAnchor();
    }

    function _logIdOf(address account, uint96 label) private pure returns (bytes32) {
        return bytes32(bytes20(account)) | bytes32(uint256(label));
    }

    /// @dev Each shard's leaves come from its own seed.
    function _seedOf(uint256 shard) private pure returns (bytes32) {
        return keccak256(abi.encode("shard", shard));
    }

    /// @dev The head of `shard` at `size`, with a proof from `from` (empty when `from` is 0).
    function _head(bytes32 logId, uint256 shard, uint64 from, uint64 size)
        private
        returns (ILedgerAnchor.Head memory head)
    {
        _useSeed(_seedOf(shard));
        head.logId = logId;
        head.treeSize = size;
        head.rootHash = _root(size);
        head.proof = from == 0 ? new bytes32[](0) : _consistencyProof(from, size);
    }

    function _batch(ILedgerAnchor.Head[] memory heads) private {
        vm.prank(operator);
        anchors.anchorBatch(heads);
    }

    function _expectBatchRevert(ILedgerAnchor.Head[] memory heads, bytes memory err) private {
        vm.expectRevert(err);
        vm.prank(operator);
        anchors.anchorBatch(heads);
    }

    function _assertLatest(bytes32 logId, uint64 size, bytes32 root) private view {
        (uint64 anchoredSize, bytes32 anchoredRoot) = anchors.latest(logId);
        assertEq(anchoredSize, size);
        assertEq(anchoredRoot, root);
    }

    function test_batch_anchorsEveryShard_thenExtendsEach() public {
        ILedgerAnchor.Head[] memory first = new ILedgerAnchor.Head[](3);
        for (uint256 s; s < 3; ++s) {
            first[s] = _head(_logIdOf(operator, uint96(s)), s, 0, uint64(3 + s));
        }
        for (uint256 s; s < 3; ++s) {
            vm.expectEmit(address(anchors));
            emit ILedgerAnchor.OperatorTransferred(first[s].logId, address(0), operator);
            vm.expectEmit(address(anchors));
            emit ILedgerAnchor.Anchored(first[s].logId, first[s].treeSize, first[s].rootHash);
        }
        _batch(first);
        for (uint256 s; s < 3; ++s) {
            _assertLatest(first[s].logId, first[s].treeSize, first[s].rootHash);
            assertEq(anchors.operatorOf(first[s].logId), operator);
        }
        // Only the shards that grew: 0 and 2.
        ILedgerAnchor.Head[] memory second = new ILedgerAnchor.Head[](2);
        second[0] = _head(first[0].logId, 0, 3, 17);
        second[1] = _head(first[2].logId, 2, 5, 9);
        _batch(second);
        _assertLatest(first[0].logId, 17, second[0].rootHash);
        _assertLatest(first[1].logId, first[1].treeSize, first[1].rootHash);
        _assertLatest(first[2].logId, 9, second[1].rootHash);
    }

    function test_batch_emptyIsRefused() public {
        _expectBatchRevert(
            new ILedgerAnchor.Head[](0), abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorEmptyBatch.selector)
        );
    }

    /// @dev Attack: one shard's root is not consistent with its anchored one (a rewritten history):
    ///      the whole batch is refused, the honest shards included, and nothing moves.
    function test_batch_attack_inconsistentRootRevertsEverything() public {
        bytes32 a = _logIdOf(operator, 1);
        bytes32 b = _logIdOf(operator, 2);
        ILedgerAnchor.Head[] memory first = new ILedgerAnchor.Head[](2);
        first[0] = _head(a, 1, 0, 4);
        first[1] = _head(b, 2, 0, 4);
        _batch(first);
        ILedgerAnchor.Head[] memory second = new ILedgerAnchor.Head[](2);
        second[0] = _head(a, 1, 4, 8);
        second[1] = _head(b, 99, 4, 8); // another history of shard b, with its own (valid) proof
        _expectBatchRevert(
            second, abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorInvalidProof.selector, b, 4, 8)
        );
        _assertLatest(a, 4, first[0].rootHash);
        _assertLatest(b, 4, first[1].rootHash);
        // A proof of the right history but for another log's head is refused the same way.
        second[1] = _head(b, 2, 4, 8);
        second[1].proof = second[0].proof;
        _expectBatchRevert(
            second, abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorInvalidProof.selector, b, 4, 8)
        );
    }

    /// @dev Attack: a batch naming a log someone else operates, or an unclaimed id bound to another
    ///      account, is refused whole.
    function test_batch_attack_someoneElsesLogId() public {
        bytes32 theirs = _logIdOf(stranger, 7);
        ILedgerAnchor.Head[] memory own = new ILedgerAnchor.Head[](1);
        own[0] = _head(theirs, 7, 0, 2);
        vm.prank(stranger);
        anchors.anchorBatch(own);

        bytes32 mine = _logIdOf(operator, 1);
        ILedgerAnchor.Head[] memory heads = new ILedgerAnchor.Head[](2);
        heads[0] = _head(mine, 1, 0, 3);
        heads[1] = _head(theirs, 7, 2, 5);
        _expectBatchRevert(
            heads,
            abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorUnauthorized.selector, theirs, operator, stranger)
        );
        // An id naming another account that nobody claimed yet: still not the operator's to take.
        bytes32 unclaimed = _logIdOf(stranger, 8);
        heads[1] = _head(unclaimed, 8, 0, 3);
        _expectBatchRevert(
            heads,
            abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorUnauthorized.selector, unclaimed, operator, stranger)
        );
        _assertLatest(mine, 0, bytes32(0));
        assertEq(anchors.operatorOf(unclaimed), address(0));
        _assertLatest(theirs, 2, own[0].rootHash);
    }

    /// @dev The same log twice in one batch: each head must grow from the one before it.
    function test_batch_sameLogTwice() public {
        bytes32 a = _logIdOf(operator, 1);
        ILedgerAnchor.Head[] memory heads = new ILedgerAnchor.Head[](2);
        heads[0] = _head(a, 1, 0, 3);
        heads[1] = _head(a, 1, 0, 3);
        _expectBatchRevert(
            heads, abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorNotGrowing.selector, a, 3, 3)
        );
        heads[1] = _head(a, 1, 3, 6);
        _batch(heads);
        _assertLatest(a, 6, heads[1].rootHash);
    }

    /// @dev A batch leaves exactly the state the same heads anchored one by one leave.
    function testFuzz_batch_equalsOneByOne(uint8 shards, uint16 seed) public {
        uint256 count = 1 + (uint256(shards) % 6);
        ILedgerAnchor.Head[] memory heads = new ILedgerAnchor.Head[](count);
        for (uint256 s; s < count; ++s) {
            heads[s] = _head(_logIdOf(operator, uint96(s)), s + seed, 0, uint64(1 + ((seed + s * 7) % 40)));
        }
        _batch(heads);
        LedgerAnchor single = new LedgerAnchor();
        for (uint256 s; s < count; ++s) {
            vm.prank(operator);
            single.anchor(heads[s].logId, heads[s].treeSize, heads[s].rootHash, heads[s].proof);
            (uint64 sizeA, bytes32 rootA) = anchors.latest(heads[s].logId);
            (uint64 sizeB, bytes32 rootB) = single.latest(heads[s].logId);
            assertEq(sizeA, sizeB);
            assertEq(rootA, rootB);
        }
    }
}
