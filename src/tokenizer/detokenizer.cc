#include "tokenizer/detokenizer.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace kiln::tokenizer {

Detokenizer::Detokenizer(std::shared_ptr<const Tokenizer> tokenizer,
                         std::vector<std::string> stop_strings, bool skip_special)
    : tok_(std::move(tokenizer)), stops_(std::move(stop_strings)), skip_special_(skip_special) {
  KILN_CHECK(tok_ != nullptr);
  strip_space_ = tok_->strips_leading_space();
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string Detokenizer::Push(int32_t id) {
  if (stopped()) return {};
  raw_.append(tok_->TokenBytes(id, skip_special_));
  size_t complete = CompleteUtf8Prefix(raw_);
  std::string text = Utf8Lossy(std::string_view(raw_).substr(0, complete));
  raw_.erase(0, complete);
  return Release(std::move(text), /*final=*/false);
}

std::string Detokenizer::Finish() {
  if (stopped()) return {};
  std::string text = Utf8Lossy(raw_);
  raw_.clear();
  return Release(std::move(text), /*final=*/true);
}

std::string Detokenizer::Release(std::string text, bool final) {
  if (strip_space_ && !text.empty()) {
    if (text[0] == ' ') text.erase(0, 1);
    strip_space_ = false;
  }
  held_ += text;
  // Earliest complete stop string.
  size_t stop_pos = std::string::npos;
  for (size_t k = 0; k < stops_.size(); ++k) {
    size_t p = held_.find(stops_[k]);
    if (p < stop_pos) {
      stop_pos = p;
      stop_idx_ = static_cast<int>(k);
    }
  }
  std::string out;
  if (stop_pos != std::string::npos) {
    out = held_.substr(0, stop_pos);
    held_.clear();
    raw_.clear();
  } else {
    // Hold back the longest suffix that is a proper prefix of some stop string.
    size_t hold = 0;
    if (!final) {
      for (const std::string& s : stops_) {
        for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
          if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
            hold = k;
            break;
          }
        }
      }
    }
    out = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
  }
  emitted_ += out;
  return out;
}

}  // namespace kiln::tokenizer
