// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Registry: providers announce themselves, their prices and how to reach them.
/// @notice Enumerable (`providerCount`, `listProviders`) and filterable on chain by region, TEE type and token
///         (`findProviders`); every change is an event. Everything here is self-declared by the provider: clients
///         still verify attestation before trusting it with anything secret.
contract Registry {
    /// @notice Resource ids for the pricing table; prices are integer token units per unit-second.
    uint8 public constant RESOURCE_CPU = 0; // per millicore-second
    uint8 public constant RESOURCE_MEMORY = 1; // per MiB-second
    uint8 public constant RESOURCE_STORAGE = 2; // per GiB-second
    uint8 public constant RESOURCE_GPU = 3; // per unit-second
    uint8 public constant RESOURCE_COUNT = 4;

    uint256 public constant MAX_NAME_BYTES = 64;
    uint256 public constant MAX_SHORT_STRING_BYTES = 64;
    uint256 public constant MAX_ADDR_BYTES = 256;
    uint256 public constant MAX_LIST = 16;

    struct Price {
        uint8 resource;
        uint256 pricePerUnitSecond;
    }

    struct ProviderInput {
        string name;
        string[] regions;
        string[] multiaddrs;
        string metadataCid;
        string[] teeTypes;
        address token;
        uint32 minNoticeSeconds;
        Price[] prices;
        /// @notice The provider release it runs (an id in the Releases contract; zero = none declared). Declared,
        ///         not proven: publishers match the provider's evidence against the release registry themselves.
        bytes32 release;
    }

    struct ProviderInfo {
        address provider;
        string name;
        string[] regions;
        string[] multiaddrs;
        string metadataCid;
        string[] teeTypes;
        address token;
        uint32 minNoticeSeconds;
        uint64 registeredAt;
        uint64 updatedAt;
        Price[] prices;
        bytes32 release;
    }

    /// @notice Empty strings and the zero address match anything.
    struct Filter {
        string region;
        string teeType;
        address token;
    }

    address[] private _providers;
    mapping(address provider => uint256) private _indexPlusOne;
    mapping(address provider => ProviderInfo) private _info;

    event ProviderRegistered(address indexed provider, string name);
    event ProviderUpdated(address indexed provider, string name);
    event ProviderDeregistered(address indexed provider);

    error AlreadyRegistered(address provider);
    error NotRegistered(address provider);
    error EmptyName();
    error StringTooLong(string field, uint256 length, uint256 maxLength);
    error ListTooLong(string field, uint256 length, uint256 maxLength);
    error UnknownResource(uint8 resource);
    error DuplicateResource(uint8 resource);
    error NoPrices();
    error ZeroToken();

    function register(ProviderInput calldata input) external {
        if (_indexPlusOne[msg.sender] != 0) revert AlreadyRegistered(msg.sender);
        _validate(input);
        _providers.push(msg.sender);
        _indexPlusOne[msg.sender] = _providers.length;
        ProviderInfo storage info = _info[msg.sender];
        info.provider = msg.sender;
        info.registeredAt = uint64(block.timestamp);
        _store(info, input);
        emit ProviderRegistered(msg.sender, input.name);
    }

    function update(ProviderInput calldata input) external {
        if (_indexPlusOne[msg.sender] == 0) revert NotRegistered(msg.sender);
        _validate(input);
        _store(_info[msg.sender], input);
        emit ProviderUpdated(msg.sender, input.name);
    }

    function deregister() external {
        uint256 indexPlusOne = _indexPlusOne[msg.sender];
        if (indexPlusOne == 0) revert NotRegistered(msg.sender);
        uint256 last = _providers.length - 1;
        if (indexPlusOne - 1 != last) {
            address moved = _providers[last];
            _providers[indexPlusOne - 1] = moved;
            _indexPlusOne[moved] = indexPlusOne;
        }
        _providers.pop();
        delete _indexPlusOne[msg.sender];
        ProviderInfo storage info = _info[msg.sender];
        delete info.regions;
        delete info.multiaddrs;
        delete info.teeTypes;
        delete info.prices;
        delete _info[msg.sender];
        emit ProviderDeregistered(msg.sender);
    }

    function isRegistered(address provider) external view returns (bool) {
        return _indexPlusOne[provider] != 0;
    }

    function providerCount() external view returns (uint256) {
        return _providers.length;
    }

    function getProvider(address provider) external view returns (ProviderInfo memory) {
        if (_indexPlusOne[provider] == 0) revert NotRegistered(provider);
        return _info[provider];
    }

    /// @notice A page of providers in registry order (which changes when a provider deregisters).
    function listProviders(uint256 offset, uint256 limit) external view returns (ProviderInfo[] memory page) {
        uint256 n = _providers.length;
        if (offset >= n) return new ProviderInfo[](0);
        uint256 end = offset + limit > n ? n : offset + limit;
        page = new ProviderInfo[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _info[_providers[i]];
        }
    }

    /// @notice Scans providers [offset, offset+limit) and returns those matching `filter`, plus where to resume.
    function findProviders(Filter calldata filter, uint256 offset, uint256 limit)
        external
        view
        returns (ProviderInfo[] memory matches, uint256 next)
    {
        uint256 n = _providers.length;
        next = offset + limit > n ? n : offset + limit;
        ProviderInfo[] memory buffer = new ProviderInfo[](next > offset ? next - offset : 0);
        uint256 found;
        for (uint256 i = offset; i < next; ++i) {
            ProviderInfo storage info = _info[_providers[i]];
            if (_matches(info, filter)) buffer[found++] = info;
        }
        matches = new ProviderInfo[](found);
        for (uint256 i = 0; i < found; ++i) {
            matches[i] = buffer[i];
        }
    }

    function _matches(ProviderInfo storage info, Filter calldata filter) private view returns (bool) {
        if (filter.token != address(0) && info.token != filter.token) return false;
        if (bytes(filter.region).length != 0 && !_contains(info.regions, filter.region)) return false;
        if (bytes(filter.teeType).length != 0 && !_contains(info.teeTypes, filter.teeType)) return false;
        return true;
    }

    function _contains(string[] storage list, string calldata value) private view returns (bool) {
        bytes32 h = keccak256(bytes(value));
        for (uint256 i = 0; i < list.length; ++i) {
            if (keccak256(bytes(list[i])) == h) return true;
        }
        return false;
    }

    function _validate(ProviderInput calldata input) private pure {
        if (bytes(input.name).length == 0) revert EmptyName();
        _checkString("name", input.name, MAX_NAME_BYTES);
        _checkString("metadataCid", input.metadataCid, MAX_ADDR_BYTES);
        _checkList("regions", input.regions, MAX_SHORT_STRING_BYTES);
        _checkList("multiaddrs", input.multiaddrs, MAX_ADDR_BYTES);
        _checkList("teeTypes", input.teeTypes, MAX_SHORT_STRING_BYTES);
        if (input.token == address(0)) revert ZeroToken();
        uint256 n = input.prices.length;
        if (n == 0) revert NoPrices();
        if (n > RESOURCE_COUNT) revert ListTooLong("prices", n, RESOURCE_COUNT);
        uint256 seen;
        for (uint256 i = 0; i < n; ++i) {
            uint8 r = input.prices[i].resource;
            if (r >= RESOURCE_COUNT) revert UnknownResource(r);
            if (seen & (1 << r) != 0) revert DuplicateResource(r);
            seen |= 1 << r;
        }
    }

    function _checkString(string memory field, string calldata value, uint256 max) private pure {
        if (bytes(value).length > max) revert StringTooLong(field, bytes(value).length, max);
    }

    function _checkList(string memory field, string[] calldata list, uint256 maxItemBytes) private pure {
        if (list.length > MAX_LIST) revert ListTooLong(field, list.length, MAX_LIST);
        for (uint256 i = 0; i < list.length; ++i) {
            _checkString(field, list[i], maxItemBytes);
        }
    }

    function _store(ProviderInfo storage info, ProviderInput calldata input) private {
        info.name = input.name;
        _copy(info.regions, input.regions);
        _copy(info.multiaddrs, input.multiaddrs);
        info.metadataCid = input.metadataCid;
        _copy(info.teeTypes, input.teeTypes);
        info.token = input.token;
        info.minNoticeSeconds = input.minNoticeSeconds;
        info.updatedAt = uint64(block.timestamp);
        info.release = input.release;
        delete info.prices;
        for (uint256 i = 0; i < input.prices.length; ++i) {
            info.prices.push(input.prices[i]);
        }
    }

    function _copy(string[] storage to, string[] calldata from) private {
        while (to.length > 0) to.pop();
        for (uint256 i = 0; i < from.length; ++i) {
            to.push(from[i]);
        }
    }
}
