#pragma once

#include <cmath>
#include <cstdint>

namespace pdserve::loadgen {

// A small, fully specified random source (SplitMix64 plus textbook transforms). The standard
// library's distributions are implementation-defined, so a schedule made with them would differ
// between libstdc++ and libc++; with this one a --seed gives the same run everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1).
  double Uniform01() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [lo, hi], both inclusive (hi >= lo). The modulo bias is below 2^-40 for
  // the ranges used here.
  int64_t UniformInt(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(Next() % span);
  }

  double Exponential(double mean) { return -std::log1p(-Uniform01()) * mean; }

  // Standard normal (Box-Muller; 1 - U keeps the logarithm finite).
  double Normal() {
    const double u1 = 1.0 - Uniform01();
    const double u2 = Uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  // Gamma(shape, scale) by Marsaglia and Tsang; shape < 1 through the boost
  // Gamma(shape) = Gamma(shape + 1) * U^(1/shape).
  double Gamma(double shape, double scale) {
    if (shape < 1.0) {
      const double u = 1.0 - Uniform01();
      return Gamma(shape + 1.0, scale) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    while (true) {
      double x, v;
      do {
        x = Normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = Uniform01();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v * scale;
    }
  }

 private:
  uint64_t state_;
};

}  // namespace pdserve::loadgen
