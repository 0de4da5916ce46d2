// Shared by the train/* golden runners (train.cc, train_adapters.cc): comparing the gradients a tape holds with a
// case's "grad.<name>" tensors.
#pragma once
#include <map>
#include <set>
#include <string>

#include "golden.h"
#include "ops/autograd.h"

namespace pigment::golden {

// Compares every "grad.<name>" tensor of the case with the gradient the tape holds for `params[name]`; a gradient
// tensor that is neither a parameter's nor in `elsewhere` (compared by the caller) is a failure, not a skip. A
// parameter that nothing reached has an exactly zero gradient.
inline void compare_gradients(Case& c, const ops::autograd::Tape& tape, const std::map<std::string, Tensor>& params,
                              const std::set<std::string>& elsewhere = {}) {
  for (const auto& name : c.tensor_names()) {
    if (name.rfind("grad.", 0) != 0 || elsewhere.count(name)) continue;
    auto it = params.find(name.substr(5));
    if (it == params.end()) {
      c.failure(name, "no trained parameter of that name");
      continue;
    }
    Tensor g = tape.gradient(it->second);
    if (!g.defined()) g = Tensor::zeros(it->second.shape());
    c.compare(name, g);
  }
}

}  // namespace pigment::golden
