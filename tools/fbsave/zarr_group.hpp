// A Zarr group that holds other datasets (fbsave --sequences all, several streams): its
// metadata file for either Zarr version, written through a temporary file.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace framebroker::fbsave::zarr {

// Creates `dir` and writes its group metadata with `attributes`: for Zarr v2 .zgroup and (when
// attributes is not empty) .zattrs; for v3 zarr.json {"zarr_format": 3, "node_type": "group",
// "attributes": ...}. Throws std::runtime_error naming the file and the cause.
void write_group(const std::string& dir, int zarr_version, const nlohmann::json& attributes);

}  // namespace framebroker::fbsave::zarr
