#pragma once

// `pdserve doctor`'s two outputs of one Diagnosis: a text table for people and JSON for
// scripts (the same findings, field for field).

#include <string>

#include "doctor/checks.h"
#include "nlohmann/json.hpp"

namespace pdserve::doctor {

// Per backend: a heading with its transports line, then one row per finding (item, workload,
// verdict, figure) and, under each warn / fail, the fix; a closing count of warn / fail.
std::string RenderText(const Diagnosis& d);

// {"dir", "cells", "timelines", "backends": [{"backend", "transports", "findings": [{"item",
// "workload", "verdict", "figure", "fix"}]}], "warn", "fail"}
nlohmann::json ToJson(const Diagnosis& d);

}  // namespace pdserve::doctor
