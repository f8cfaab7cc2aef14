// The aravis adapter's property mirror: the named properties (Width, ..., Gain) mapped onto the
// standard GenICam features through ArvCamera, and genicam.<Feature> for any feature node of the
// device's node map. Acquisition and reconnecting stay in aravis_camera.cpp.
//
// Nothing here locks: the caller holds the camera's lock around every call.
//
// A genicam.* value reaches exactly one node through the typed call for its type. Names must be
// identifiers and values may not contain whitespace, '=' or quotes: Aravis' feature-string syntax
// ("A=1 B=2", "R[0x100]=64") is never used, so one value cannot become a second assignment or a
// raw register write that skips the read-only and busy checks.
#pragma once

#include <arv.h>

#include <optional>
#include <string>

#include "cameras/properties.hpp"

namespace framebroker::cameras::genicam {

// GError -> text, freeing it.
std::string take_error(GError*& e, const char* fallback = "unknown error");

// The named properties, read back from the device: added on the first call, refreshed after.
void read_named(ArvCamera* c, PropertySet& props);
// Sets a named property (checked by `props` first: type, limits, `running`), then mirrors what
// the device took. Throws PropertyError.
void set_named(ArvCamera* c, PropertySet& props, const std::string& prop, const std::string& value,
               bool running);

// True for "genicam.<anything>".
bool is_feature(const std::string& prop);
// genicam.<Feature>: the node's value, also kept in `props` so that a listing shows it.
// Throws PropertyError (Invalid for a name that is not an identifier, Unknown for no such node).
std::string get_feature(ArvDevice* d, PropertySet& props, const std::string& camera,
                        const std::string& prop);
// Sets genicam.<Feature> on its node. `running` refuses the features that change the frame
// format. Throws PropertyError.
void set_feature(ArvDevice* d, const std::string& camera, const std::string& prop,
                 const std::string& value, bool running);

}  // namespace framebroker::cameras::genicam
