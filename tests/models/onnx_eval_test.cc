// The importer's constant-folding interpreter: each op on small tensors with hand-computed
// results, including the edge cases torch's exports rely on (clamped Slice ends, -1 and 0 in
// Reshape, Softmax's opset-dependent axis semantics, integer Div).
#include "models/onnx_eval.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "onnx.pb.h"

namespace visionserve::models::internal {
namespace {

ConstPtr Ints(std::vector<int64_t> shape, std::vector<int64_t> v) {
  auto c = std::make_shared<Const>();
  c->is_int = true;
  c->shape = std::move(shape);
  c->i = std::move(v);
  return c;
}

ConstPtr Floats(std::vector<int64_t> shape, std::vector<float> v) {
  auto c = std::make_shared<Const>();
  c->shape = std::move(shape);
  c->f = std::move(v);
  return c;
}

ConstPtr Iota(std::vector<int64_t> shape) {
  auto c = std::make_shared<Const>();
  c->shape = std::move(shape);
  c->f.resize(c->numel());
  for (size_t k = 0; k < c->f.size(); ++k) c->f[k] = static_cast<float>(k);
  return c;
}

onnx::NodeProto Node(const std::string& op, int outputs = 1) {
  onnx::NodeProto n;
  n.set_op_type(op);
  for (int k = 0; k < outputs; ++k) n.add_output(absl::StrCat("y", k));
  return n;
}

void IntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void IntsAttr(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

ConstPtr One(const onnx::NodeProto& n, std::vector<ConstPtr> in, int64_t opset = 13) {
  auto out = EvalNode(n, in, opset);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0] : nullptr;
}

TEST(OnnxEvalTest, SliceClampsEndsAndHandlesNegativeIndicesAndSteps) {
  const ConstPtr x = Iota({2, 6});
  ConstPtr y = One(Node("Slice"), {x, Ints({1}, {2}), Ints({1}, {INT64_MAX}), Ints({1}, {1})});
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(y->f, (std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11}));
  y = One(Node("Slice"), {x, Ints({1}, {-1}), Ints({1}, {-7}), Ints({1}, {1}), Ints({1}, {-2})});
  EXPECT_EQ(y->f, (std::vector<float>{5, 3, 1, 11, 9, 7}));
}

TEST(OnnxEvalTest, SplitBySizesAttributeOrInputAndEvenly) {
  const ConstPtr x = Iota({1, 5, 2});
  onnx::NodeProto n = Node("Split", 2);
  IntAttr(&n, "axis", 1);
  IntsAttr(&n, "split", {2, 3});
  auto out = EvalNode(n, std::vector<ConstPtr>{x}, 12);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0]->f, (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ((*out)[1]->shape, (std::vector<int64_t>{1, 3, 2}));
  onnx::NodeProto m = Node("Split", 2);
  IntAttr(&m, "axis", -1);
  out = EvalNode(m, std::vector<ConstPtr>{x}, 13);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[1]->f, (std::vector<float>{1, 3, 5, 7, 9}));
  out = EvalNode(n, std::vector<ConstPtr>{x, Ints({2}, {1, 1})}, 13);  // sizes do not add up
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OnnxEvalTest, ReshapeWithZeroAndMinusOneThenTranspose) {
  ConstPtr y = One(Node("Reshape"), {Iota({1, 4, 6}), Ints({3}, {0, 4, -1})});
  EXPECT_EQ(y->shape, (std::vector<int64_t>{1, 4, 6}));
  y = One(Node("Reshape"), {Iota({2, 3, 4}), Ints({3}, {2, -1, 2})});
  EXPECT_EQ(y->shape, (std::vector<int64_t>{2, 6, 2}));
  onnx::NodeProto t = Node("Transpose");
  IntsAttr(&t, "perm", {0, 2, 1});
  y = One(t, {Iota({1, 2, 3})});
  EXPECT_EQ(y->shape, (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(y->f, (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_FALSE(
      EvalNode(Node("Reshape"), std::vector<ConstPtr>{Iota({2, 3}), Ints({1}, {4})}, 13).ok());
}

TEST(OnnxEvalTest, SoftmaxAxisMeansOneAxisFrom13AndTheTrailingBlockBefore) {
  const ConstPtr x = Floats({1, 2, 2}, {0, 0, 0, std::log(3.0f)});
  onnx::NodeProto n = Node("Softmax");
  IntAttr(&n, "axis", 1);
  ConstPtr y = One(n, {x}, 13);  // over axis 1: pairs (0, 0) and (0, log 3)
  EXPECT_NEAR(y->f[0], 0.5, 1e-6);
  EXPECT_NEAR(y->f[1], 0.25, 1e-6);
  EXPECT_NEAR(y->f[3], 0.75, 1e-6);
  y = One(n, {x}, 11);  // over the 4 trailing values together
  EXPECT_NEAR(y->f[0], 1.0 / 6, 1e-6);
  EXPECT_NEAR(y->f[3], 0.5, 1e-6);
}

TEST(OnnxEvalTest, ArithmeticBroadcastsAndIntegerDivisionTruncates) {
  ConstPtr y = One(Node("Add"), {Iota({2, 3}), Floats({3}, {10, 20, 30})});
  EXPECT_EQ(y->f, (std::vector<float>{10, 21, 32, 13, 24, 35}));
  y = One(Node("Div"), {Ints({3}, {7, -7, 6}), Ints({1}, {2})});
  EXPECT_EQ(y->i, (std::vector<int64_t>{3, -3, 3}));
  EXPECT_FALSE(EvalNode(Node("Mul"), std::vector<ConstPtr>{Iota({2, 3}), Iota({2})}, 13).ok());
}

TEST(OnnxEvalTest, ShapeGatherUnsqueezeConcatCast) {
  ConstPtr s = One(Node("Shape"), {Iota({1, 144, 40, 40})});
  EXPECT_EQ(s->i, (std::vector<int64_t>{1, 144, 40, 40}));
  onnx::NodeProto g = Node("Gather");
  IntAttr(&g, "axis", 0);
  ConstPtr d = One(g, {s, Ints({}, {-1})});
  EXPECT_TRUE(d->shape.empty());
  EXPECT_EQ(d->i, (std::vector<int64_t>{40}));
  onnx::NodeProto u = Node("Unsqueeze");
  IntsAttr(&u, "axes", {0});
  ConstPtr v = One(u, {d}, 12);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{1}));
  onnx::NodeProto c = Node("Concat");
  IntAttr(&c, "axis", 0);
  ConstPtr cat = One(c, {Ints({2}, {1, 144}), v});
  EXPECT_EQ(cat->i, (std::vector<int64_t>{1, 144, 40}));
  onnx::NodeProto cast = Node("Cast");
  IntAttr(&cast, "to", onnx::TensorProto::FLOAT);
  EXPECT_EQ(One(cast, {cat})->f, (std::vector<float>{1, 144, 40}));
}

TEST(OnnxEvalTest, ConvIsAPlainDirectConvolution) {
  // DFL: a 1×1 conv with weights 0..3 over 4 channels is the expectation of the bins.
  const ConstPtr x = Floats({1, 4, 1, 2}, {0.1f, 0.0f, 0.2f, 0.0f, 0.3f, 0.5f, 0.4f, 0.5f});
  ConstPtr y = One(Node("Conv"), {x, Floats({1, 4, 1, 1}, {0, 1, 2, 3})});
  EXPECT_EQ(y->shape, (std::vector<int64_t>{1, 1, 1, 2}));
  EXPECT_NEAR(y->f[0], 0.2 + 0.6 + 1.2, 1e-6);
  EXPECT_NEAR(y->f[1], 0.0 + 1.0 + 1.5, 1e-6);
}

TEST(OnnxEvalTest, UnknownOpsAreUnimplemented) {
  EXPECT_FALSE(CanEvaluate("NonMaxSuppression"));
  EXPECT_EQ(EvalNode(Node("TopK"), std::vector<ConstPtr>{Iota({3})}, 13).status().code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace visionserve::models::internal
