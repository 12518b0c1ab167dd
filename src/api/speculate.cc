#include "api/speculate.h"

#include <algorithm>

namespace kiln {

StatusOr<SpeculateMode> ParseSpeculateMode(std::string_view text) {
  if (text == "off") return SpeculateMode::kOff;
  if (text == "lookup") return SpeculateMode::kLookup;
  if (text == "draft") return SpeculateMode::kDraft;
  if (text == "auto") return SpeculateMode::kAuto;
  return InvalidArgument("speculate: expected off, lookup, draft or auto, got '%.*s'",
                         static_cast<int>(text.size()), text.data());
}

const char* SpeculateModeName(SpeculateMode mode) {
  switch (mode) {
    case SpeculateMode::kOff: return "off";
    case SpeculateMode::kLookup: return "lookup";
    case SpeculateMode::kDraft: return "draft";
    case SpeculateMode::kAuto: return "auto";
  }
  return "?";
}

namespace api {

StatusOr<engine::SpeculateConfig> ToSpeculateConfig(const SpeculateOptions& options) {
  constexpr int kMaxDraft = 64;
  if (options.draft_max < 0 || options.draft_max > kMaxDraft) {
    return InvalidArgument("draft_max must be in [0, %d] (0 = default), got %d", kMaxDraft,
                           options.draft_max);
  }
  const bool draft = !options.draft_model.empty();
  if (options.mode == SpeculateMode::kDraft && !draft) {
    return InvalidArgument("speculate draft needs a draft model (--draft MODEL)");
  }
  if (draft && (options.mode == SpeculateMode::kOff || options.mode == SpeculateMode::kLookup)) {
    return InvalidArgument("a draft model is given but speculate is %s (use draft or auto)",
                           SpeculateModeName(options.mode));
  }
  engine::SpeculateConfig c;
  c.enabled = options.mode != SpeculateMode::kOff;
  c.adaptive = options.mode == SpeculateMode::kAuto;
  // A draft model's guesses each cost a forward of it: fewer by default than lookup's.
  c.draft_max = options.draft_max > 0 ? options.draft_max : draft ? 4 : c.draft_max;
  c.draft_min = std::min(c.draft_min, c.draft_max);
  return c;
}

Status CheckSameVocabulary(const tokenizer::Tokenizer& target, const tokenizer::Tokenizer& draft) {
  const int32_t n = std::max(target.n_vocab(), draft.n_vocab());
  for (int32_t id = 0; id < n; ++id) {
    const std::string_view a = target.TokenText(id), b = draft.TokenText(id);
    if (a != b || id >= target.n_vocab() || id >= draft.n_vocab()) {
      return InvalidArgument(
          "draft model: its vocabulary differs from the target's at token %d ('%.*s' vs "
          "'%.*s'; %d vs %d tokens)", id, static_cast<int>(b.size()), b.data(),
          static_cast<int>(a.size()), a.data(), draft.n_vocab(), target.n_vocab());
    }
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<DraftModel>> LoadDraftModel(const SpeculateOptions& options,
                                                     const tokenizer::Tokenizer& target,
                                                     const model::LoadOptions& load,
                                                     int32_t n_blocks, int32_t block_tokens) {
  if (options.draft_model.empty()) return std::unique_ptr<DraftModel>();
  auto d = std::make_unique<DraftModel>();
  KILN_ASSIGN_OR_RETURN(d->loaded, engine::LoadModel(options.draft_model, load));
  KILN_RETURN_IF_ERROR(CheckSameVocabulary(target, *d->loaded->tokenizer));
  KILN_ASSIGN_OR_RETURN(d->paged,
                        engine::PagedModel::Create(d->loaded->model.get(), n_blocks, block_tokens));
  d->n_blocks = n_blocks;
  return d;
}

}  // namespace api
}  // namespace kiln
