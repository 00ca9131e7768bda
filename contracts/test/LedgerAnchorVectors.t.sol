// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test, DirEntry} from "./utils/Test.sol";
import {LedgerAnchor} from "../src/LedgerAnchor.sol";
import {ILedgerAnchor} from "../src/interfaces/ILedgerAnchor.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";

/// @notice The RFC 9162 consistency vectors of transparency-dev/merkle (read from the shared vectors
///         folder beside the repo, never copied into it). Skipped when the folder is absent.
contract LedgerAnchorVectorsTest is Test {
    /// @dev Relative to contracts/; foundry.toml grants read access to ../../shared/vectors.
    string private constant DEFAULT_DIR = "../../shared/vectors/rfc9162/consistency";

    LedgerAnchor private anchors;

    struct Case {
        uint256 size1;
        uint256 size2;
        bytes root1;
        bytes root2;
        bytes[] proof;
        bool wantErr;
    }

    function setUp() public {
        anchors = new LedgerAnchor();
    }

    function test_rfc9162ConsistencyVectors() public {
        string memory dir = vm.envOr("CARCHAIN_RFC9162_CONSISTENCY_DIR", DEFAULT_DIR);
        // forge refuses to resolve a missing path (a cheatcode error, caught here) or says false.
        bool present;
        try vm.isDir(dir) returns (bool isDir) {
            present = isDir;
        } catch {}
        if (!present) {
            emit log_string(string.concat("skipped: no RFC 9162 vectors at ", dir));
            vm.skip(true);
            return;
        }
        DirEntry[] memory entries = vm.readDir(dir, 2);
        uint256 cases;
        uint256 accepted;
        for (uint256 i; i < entries.length; ++i) {
            if (entries[i].isDir || !_endsWith(entries[i].path, ".json")) continue;
            _check(entries[i].path, _load(entries[i].path), i);
            ++cases;
            if (!_load(entries[i].path).wantErr) ++accepted;
        }
        // 5 folders of one valid case and its broken variants, plus the edge cases in `additional`.
        assertGe(cases, 90);
        assertGe(accepted, 6);
        emit log_named_uint("rfc9162 consistency vectors checked", cases);
    }

    function _load(string memory path) private view returns (Case memory c) {
        string memory json = vm.readFile(path);
        c.size1 = vm.parseJsonUint(json, ".size1");
        c.size2 = vm.parseJsonUint(json, ".size2");
        c.root1 = Base64.decode(vm.parseJsonString(json, ".root1"));
        c.root2 = Base64.decode(vm.parseJsonString(json, ".root2"));
        c.wantErr = vm.parseJsonBool(json, ".wantErr");
        string[] memory proof;
        try vm.parseJsonStringArray(json, ".proof") returns (string[] memory values) {
            proof = values;
        } catch {
            proof = new string[](0); // an empty JSON array
        }
        c.proof = new bytes[](proof.length);
        for (uint256 j; j < proof.length; ++j) c.proof[j] = Base64.decode(proof[j]);
    }

    function _check(string memory path, Case memory c, uint256 salt) private {
        // A proof element that is not 32 bytes cannot even be expressed as bytes32: such a case must
        // be one the verifier is expected to refuse. Roots of other lengths ("don't care" values in
        // the size-only edge cases) are compared as opaque values, so they map to their keccak256.
        bool representable = c.size1 <= type(uint64).max && c.size2 <= type(uint64).max;
        bytes32[] memory proof = new bytes32[](c.proof.length);
        for (uint256 j; j < c.proof.length; ++j) {
            if (c.proof[j].length != 32) representable = false;
            else proof[j] = bytes32(c.proof[j]);
        }
        if (!representable) {
            assertTrue(c.wantErr, string.concat("unrepresentable but valid: ", path));
            return;
        }
        bytes32 root1 = c.root1.length == 32 ? bytes32(c.root1) : keccak256(c.root1);
        bytes32 root2 = c.root2.length == 32 ? bytes32(c.root2) : keccak256(c.root2);
        bool ok = anchors.verifyConsistency(uint64(c.size1), uint64(c.size2), root1, root2, proof);
        assertEq(ok, !c.wantErr, string.concat("verifyConsistency disagrees: ", path));

        // Through `anchor` too, whenever the sizes make a real extension.
        if (c.size1 == 0 || c.size1 >= c.size2) return;
        // A log id naming this contract, which anchors it (LedgerAnchor binds an id to its claimant).
        bytes32 logId =
            bytes32(bytes20(address(this))) | (keccak256(abi.encode(path, salt)) & bytes32(uint256(type(uint96).max)));
        anchors.anchor(logId, uint64(c.size1), root1, new bytes32[](0));
        if (c.wantErr) {
            vm.expectRevert(
                abi.encodeWithSelector(ILedgerAnchor.LedgerAnchorInvalidProof.selector, logId, c.size1, c.size2)
            );
        }
        anchors.anchor(logId, uint64(c.size2), root2, proof);
    }

    function _endsWith(string memory value, string memory suffix) private pure returns (bool) {
        bytes memory v = bytes(value);
        bytes memory s = bytes(suffix);
        if (v.length < s.length) return false;
        for (uint256 i; i < s.length; ++i) {
            if (v[v.length - s.length + i] != s[i]) return false;
        }
        return true;
    }
}
