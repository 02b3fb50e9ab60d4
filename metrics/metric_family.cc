#include "metrics/metric_family.h"

#include "absl/strings/str_cat.h"

namespace pdserve::metrics {

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, BucketBounds bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {}

absl::Status FamilyBase::CheckValues(std::span<const absl::string_view> values) const {
  if (values.size() != label_names_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", values.size(), " label values for ",
                                                   label_names_.size(), " labels"));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].size() > kMaxLabelValueBytes) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": label ", label_names_[i], " has ",
                                                     values[i].size(), " bytes (at most ",
                                                     kMaxLabelValueBytes, ")"));
    }
  }
  return absl::OkStatus();
}

FamilySnapshot FamilyBase::Header() const {
  return FamilySnapshot{.name = name_,
                        .help = help_,
                        .type = type_,
                        .label_names = label_names_,
                        .bounds = bounds_,
                        .series = {}};
}

namespace {

template <typename T>
std::unique_ptr<T> MakeSeries(const BucketBounds& bounds) {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(bounds);
  } else {
    return std::make_unique<T>();
  }
}

template <typename T>
void Fill(const T& series, SeriesSnapshot& out) {
  if constexpr (std::is_same_v<T, Histogram>) {
    out.histogram = series.Read();
  } else {
    out.value = series.Value();
  }
}

}  // namespace

template <typename T>
absl::StatusOr<T*> Family<T>::Get(std::span<const absl::string_view> values) {
  if (absl::Status ok = CheckValues(values); !ok.ok()) return ok;
  std::vector<std::string> key(values.begin(), values.end());
  absl::MutexLock lock(&mu_);
  auto it = series_.find(key);
  if (it != series_.end()) return it->second.get();
  if (series_.size() >= kMaxSeries) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name_, " already has ", kMaxSeries, " series; refusing another"));
  }
  return series_.emplace(std::move(key), MakeSeries<T>(bounds_)).first->second.get();
}

template <typename T>
FamilySnapshot Family<T>::Snapshot() const {
  FamilySnapshot out = Header();
  absl::MutexLock lock(&mu_);
  out.series.reserve(series_.size());
  for (const auto& [values, series] : series_) {
    SeriesSnapshot& s = out.series.emplace_back();
    s.label_values = values;
    Fill(*series, s);
  }
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace pdserve::metrics
