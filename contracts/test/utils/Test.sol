// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice The subset of Foundry's cheatcodes Carchain's tests use.
/// @dev forge-std is not published on npm (the only registry here), so the tests carry this small
///      base instead. Cheatcodes are calls to the well-known cheatcode address.
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function warp(uint256 timestamp) external;
    function roll(uint256 blockNumber) external;
    function deal(address account, uint256 newBalance) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function expectEmit() external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function assume(bool condition) external pure;
    function label(address account, string calldata newLabel) external;
    function readFile(string calldata path) external view returns (string memory);
    function parseJson(string calldata json, string calldata key) external pure returns (bytes memory);
    function parseJsonBytes32Array(string calldata json, string calldata key) external pure returns (bytes32[] memory);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonBool(string calldata json, string calldata key) external pure returns (bool);
    function exists(string calldata path) external view returns (bool);
    function envOr(string calldata name, string calldata defaultValue) external view returns (string memory);
    function expectEmit(address emitter) external;
    function isFile(string calldata path) external view returns (bool);
    function isDir(string calldata path) external view returns (bool);
    function readDir(string calldata path) external view returns (DirEntry[] memory entries);
    function readDir(string calldata path, uint64 maxDepth) external view returns (DirEntry[] memory entries);
    function skip(bool skipTest) external;
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonStringArray(string calldata json, string calldata key) external pure returns (string[] memory);
    function chainId(uint256 newChainId) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function toString(uint256 value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function pauseGasMetering() external;
    function resumeGasMetering() external;
    function lastCallGas() external view returns (Gas memory gas);
}

/// @notice Foundry's `readDir` entry.
struct DirEntry {
    string errorMessage;
    string path;
    uint64 depth;
    bool isDir;
    bool isSymlink;
}

/// @notice Foundry's `lastCallGas` record.
struct Gas {
    uint64 gasLimit;
    uint64 gasTotalUsed;
    uint64 gasMemoryUsed;
    int64 gasRefunded;
    uint64 gasRemaining;
}

/// @notice Assertions and fuzz helpers; a failed assertion reverts, which fails the test.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public constant IS_TEST = true;

    address[] private targetedContracts;

    error AssertionFailed(string message);

    /// @dev forge prints these (ds-test convention) with `-vv`.
    event log_string(string value);
    event log_named_uint(string key, uint256 value);

    function fail(string memory message) internal pure {
        revert AssertionFailed(message);
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(message);
    }

    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "expected true");
    }

    function assertFalse(bool condition) internal pure {
        assertTrue(!condition, "expected false");
    }

    function assertEq(uint256 actual, uint256 expected) internal pure {
        if (actual != expected) fail(string.concat("uint mismatch: ", _toString(actual), " != ", _toString(expected)));
    }

    function assertEq(uint256 actual, uint256 expected, string memory message) internal pure {
        if (actual != expected) fail(string.concat(message, ": ", _toString(actual), " != ", _toString(expected)));
    }

    function assertEq(address actual, address expected) internal pure {
        if (actual != expected) fail("address mismatch");
    }

    function assertEq(bytes32 actual, bytes32 expected) internal pure {
        if (actual != expected) fail("bytes32 mismatch");
    }

    function assertEq(bool actual, bool expected) internal pure {
        if (actual != expected) fail("bool mismatch");
    }

    function assertEq(string memory actual, string memory expected) internal pure {
        if (keccak256(bytes(actual)) != keccak256(bytes(expected))) {
            fail(string.concat("string mismatch: ", actual, " != ", expected));
        }
    }

    function assertEq(bytes memory actual, bytes memory expected) internal pure {
        if (keccak256(actual) != keccak256(expected)) fail("bytes mismatch");
    }

    function assertEq(bytes32 actual, bytes32 expected, string memory message) internal pure {
        if (actual != expected) fail(message);
    }

    function assertEq(address actual, address expected, string memory message) internal pure {
        if (actual != expected) fail(message);
    }

    function assertEq(bool actual, bool expected, string memory message) internal pure {
        if (actual != expected) fail(message);
    }

    function assertLe(uint256 actual, uint256 limit) internal pure {
        if (actual > limit) fail(string.concat(_toString(actual), " > ", _toString(limit)));
    }

    function assertGe(uint256 actual, uint256 limit) internal pure {
        if (actual < limit) fail(string.concat(_toString(actual), " < ", _toString(limit)));
    }

    /// @dev Maps `x` into [min, max] uniformly enough for fuzzing, keeping small values as they are.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        if (size == 0) return x; // the whole uint256 range
        return min + (x % size);
    }

    /// @dev Invariant runs call only these contracts (read by forge through `targetContracts()`).
    function targetContract(address target) internal {
        targetedContracts.push(target);
    }

    function targetContracts() public view returns (address[] memory) {
        return targetedContracts;
    }

    function _toString(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits;
        for (uint256 v = value; v != 0; v /= 10) digits++;
        bytes memory buffer = new bytes(digits);
        for (; value != 0; value /= 10) buffer[--digits] = bytes1(uint8(48 + (value % 10)));
        return string(buffer);
    }
}
