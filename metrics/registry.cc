#include "metrics/registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace pdserve::metrics {
namespace {

bool IsNameChar(char c, bool first, bool colon_ok) {
  if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') return true;
  if (colon_ok && c == ':') return true;
  return !first && absl::ascii_isdigit(static_cast<unsigned char>(c));
}

bool IsName(absl::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

}  // namespace

bool IsMetricName(absl::string_view name) { return IsName(name, /*colon_ok=*/true); }

bool IsLabelName(absl::string_view name) {
  return IsName(name, /*colon_ok=*/false) && name.substr(0, 2) != "__";
}

absl::Status Registry::CheckNew(const std::string& name,
                                const std::vector<std::string>& label_names,
                                MetricType type) const {
  if (!IsMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a metric name"));
  }
  if (families_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("metric ", name, " is already registered"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsLabelName(label) || (type == MetricType::kHistogram && label == "le")) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": '", label, "' cannot be a label name"));
    }
    if (std::find(label_names.begin(), label_names.begin() + static_cast<std::ptrdiff_t>(i),
                  label) != label_names.begin() + static_cast<std::ptrdiff_t>(i)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": label ", label, " named twice"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Family<T>*> Registry::Add(const std::string& name, const std::string& help,
                                         std::vector<std::string> label_names, MetricType type,
                                         BucketBounds bounds) {
  absl::MutexLock lock(&mu_);
  if (absl::Status ok = CheckNew(name, label_names, type); !ok.ok()) return ok;
  const bool unlabelled = label_names.empty();
  auto family =
      std::make_unique<Family<T>>(name, help, type, std::move(label_names), std::move(bounds));
  Family<T>* out = family.get();
  // A family without labels has exactly one series: created now, so that it reads 0 before its
  // first update (a dashboard's rate() needs the zero).
  if (unlabelled) {
    if (absl::StatusOr<T*> only = out->Get({}); !only.ok()) return only.status();
  }
  families_.emplace(name, std::move(family));
  return out;
}

absl::StatusOr<CounterFamily*> Registry::AddCounter(const std::string& name,
                                                    const std::string& help,
                                                    std::vector<std::string> label_names) {
  return Add<Counter>(name, help, std::move(label_names), MetricType::kCounter, {});
}

absl::StatusOr<GaugeFamily*> Registry::AddGauge(const std::string& name, const std::string& help,
                                                std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, std::move(label_names), MetricType::kGauge, {});
}

absl::StatusOr<HistogramFamily*> Registry::AddHistogram(const std::string& name,
                                                        const std::string& help,
                                                        std::vector<std::string> label_names,
                                                        BucketBounds bounds) {
  if (absl::Status ok = CheckBucketBounds(bounds); !ok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", ok.message()));
  }
  return Add<Histogram>(name, help, std::move(label_names), MetricType::kHistogram,
                        std::move(bounds));
}

void Registry::AddCollector(std::function<void()> collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::vector<FamilySnapshot> Registry::Snapshot() const {
  std::vector<std::function<void()>> collectors;
  std::vector<const FamilyBase*> families;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
    // Families are never removed: the pointers stay valid after the lock.
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  // Without the lock: a collector takes its owner's locks, which may be held by a thread that
  // is itself registering a family.
  for (const std::function<void()>& collect : collectors) collect();
  std::vector<FamilySnapshot> out;
  out.reserve(families.size());
  for (const FamilyBase* family : families) out.push_back(family->Snapshot());
  return out;
}

std::vector<std::string> Registry::Names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, family] : families_) names.push_back(name);
  return names;
}

}  // namespace pdserve::metrics
