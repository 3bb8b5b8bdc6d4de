#include "loadtest/schedule.h"

#include <cmath>
#include <numeric>

#include "gtest/gtest.h"

namespace visionserve::loadtest {
namespace {

using std::chrono::nanoseconds;

TEST(ArrivalProcessTest, ConstantRateHasExactGapsWithoutDrift) {
  ArrivalProcess p(Arrivals::kConstant, 300, 1);  // 1/300 s is not a whole number of ns
  nanoseconds last{-1};
  for (int i = 0; i < 300000; ++i) {
    const nanoseconds t = p.Next();
    EXPECT_GT(t, last);
    last = t;
  }
  // Request 300000 is due at exactly 1000 s less one gap: no accumulated rounding.
  EXPECT_NEAR(static_cast<double>(last.count()), (299999.0 / 300) * 1e9, 1);
}

TEST(ArrivalProcessTest, PoissonGapsAreExponentialWithTheRequestedMean) {
  const double rate = 250;
  ArrivalProcess p(Arrivals::kPoisson, rate, 42);
  std::vector<double> gaps;
  nanoseconds last = p.Next();
  EXPECT_EQ(last.count(), 0);  // the first arrival at the start
  for (int i = 0; i < 100000; ++i) {
    const nanoseconds t = p.Next();
    ASSERT_GE(t, last);
    gaps.push_back((t - last).count() / 1e9);
    last = t;
  }
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= gaps.size();
  EXPECT_NEAR(mean, 1 / rate, 0.01 / rate);
  EXPECT_NEAR(std::sqrt(var) / mean, 1.0, 0.02);  // exponential: CV 1
  // P(gap > mean) = 1/e.
  const double above =
      std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g > 1 / rate; });
  EXPECT_NEAR(above / gaps.size(), std::exp(-1.0), 0.01);
}

TEST(ArrivalProcessTest, SameSeedSameSchedule) {
  ArrivalProcess a(Arrivals::kPoisson, 10, 9), b(Arrivals::kPoisson, 10, 9),
      c(Arrivals::kPoisson, 10, 10);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const auto x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs |= x != c.Next();
  }
  EXPECT_TRUE(differs);
}

TEST(ParseSweepTest, ListsRangesAndSteps) {
  EXPECT_EQ(*ParseSweep("8", true), std::vector<double>({8}));
  EXPECT_EQ(*ParseSweep("1,2,4", true), std::vector<double>({1, 2, 4}));
  EXPECT_EQ(*ParseSweep("1..64", true), std::vector<double>({1, 2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(*ParseSweep("3..20", true), std::vector<double>({3, 6, 12, 20}));
  EXPECT_EQ(*ParseSweep("10..50:10", false), std::vector<double>({10, 20, 30, 40, 50}));
  EXPECT_EQ(*ParseSweep("1..4, 6 ,8", true), std::vector<double>({1, 2, 4, 6, 8}));
  EXPECT_EQ(*ParseSweep("2.5,7.5", false), std::vector<double>({2.5, 7.5}));
  EXPECT_EQ(*ParseSweep("0.5..1:0.25", false), std::vector<double>({0.5, 0.75, 1}));
}

TEST(ParseSweepTest, RejectsWhatIsNotALoadLevel) {
  for (const char* bad : {"", "0", "-1", "x", "1..", "..4", "8..2", "1.5", "1..4:0", "nan", "1,,2",
                          "1..100000:0.01"}) {
    EXPECT_FALSE(ParseSweep(bad, true).ok()) << bad;
  }
  EXPECT_TRUE(ParseSweep("1.5", false).ok());
}

TEST(ParseArrivalsTest, Names) {
  EXPECT_EQ(*ParseArrivals("poisson"), Arrivals::kPoisson);
  EXPECT_EQ(*ParseArrivals("constant"), Arrivals::kConstant);
  EXPECT_FALSE(ParseArrivals("uniform").ok());
}

// Runs a search against a server whose rates up to `capacity` pass.
RateSearch Simulate(RateSearchOptions o, double capacity, std::vector<double>* tried) {
  RateSearch s(o);
  while (auto r = s.NextRate()) {
    tried->push_back(*r);
    s.Report(*r, *r <= capacity);
  }
  return s;
}

TEST(RateSearchTest, DoublesThenBisectsToThePrecision) {
  std::vector<double> tried;
  const RateSearch s = Simulate(
      {.min_rate = 10, .max_rate = 1000, .start_rate = 10, .precision = 0.05, .max_steps = 20}, 137,
      &tried);
  EXPECT_EQ(std::vector<double>(tried.begin(), tried.begin() + 6),
            std::vector<double>({10, 20, 40, 80, 160, 120}));
  EXPECT_TRUE(s.converged());
  EXPECT_LE(s.best_passing_rate(), 137);
  EXPECT_GT(s.lowest_failing_rate(), 137);
  EXPECT_LE((s.lowest_failing_rate() - s.best_passing_rate()) / s.best_passing_rate(), 0.05);
  EXPECT_EQ(s.steps(), static_cast<int>(tried.size()));
}

TEST(RateSearchTest, StopsAtMaxRateWhenEverythingPasses) {
  std::vector<double> tried;
  const RateSearch s = Simulate(
      {.min_rate = 100, .max_rate = 500, .start_rate = 100, .precision = 0.05, .max_steps = 20},
      1e9, &tried);
  EXPECT_EQ(tried, std::vector<double>({100, 200, 400, 500}));
  EXPECT_EQ(s.best_passing_rate(), 500);
  EXPECT_TRUE(s.converged());
}

TEST(RateSearchTest, DescendsToMinRateWhenTheFirstRateFails) {
  std::vector<double> tried;
  const RateSearch s = Simulate(
      {.min_rate = 5, .max_rate = 500, .start_rate = 40, .precision = 0.05, .max_steps = 20}, 1,
      &tried);
  EXPECT_EQ(tried, std::vector<double>({40, 20, 10, 5}));
  EXPECT_EQ(s.best_passing_rate(), 0);
  EXPECT_TRUE(s.converged());
}

TEST(RateSearchTest, StepLimitEndsAnUnconvergedSearch) {
  std::vector<double> tried;
  const RateSearch s = Simulate(
      {.min_rate = 1, .max_rate = 1e6, .start_rate = 1, .precision = 0.001, .max_steps = 5}, 1000,
      &tried);
  EXPECT_EQ(tried.size(), 5u);
  EXPECT_FALSE(s.converged());
  EXPECT_EQ(s.best_passing_rate(), 16);
}

}  // namespace
}  // namespace visionserve::loadtest
