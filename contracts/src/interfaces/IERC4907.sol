// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ERC-4907: rental NFT, an ERC-721 extension with an expiring `user` role
/// @dev Interface id 0xad092b5c (EIP-4907).
interface IERC4907 {
    /// @notice The user of an NFT changed or its expiry changed; a zero user means no user.
    event UpdateUser(uint256 indexed tokenId, address indexed user, uint64 expires);

    /// @notice Sets the user of `tokenId` until `expires` (unix seconds). Owner or approved only.
    function setUser(uint256 tokenId, address user, uint64 expires) external;

    /// @notice The user of `tokenId`, or the zero address when there is none or it has expired.
    function userOf(uint256 tokenId) external view returns (address);

    /// @notice The expiry (unix seconds) of the user of `tokenId`; 0 when there is none.
    function userExpires(uint256 tokenId) external view returns (uint256);
}
