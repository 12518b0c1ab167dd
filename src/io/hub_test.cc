#include "io/hub.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "io/model_path.h"

namespace kiln::io {
namespace {

TEST(HubTest, ParsesRefs) {
  auto r = ParseHubRef("hf://org/name");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->org, "org");
  EXPECT_EQ(r->name, "name");
  EXPECT_EQ(r->revision, "main");
  EXPECT_EQ(r->file, "");
  EXPECT_EQ(r->RepoId(), "org/name");

  r = ParseHubRef("hf://unsloth/gemma-3-270m-it-GGUF@v1.0/sub/gemma-3-270m-it-Q4_K_M.gguf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "gemma-3-270m-it-GGUF");
  EXPECT_EQ(r->revision, "v1.0");
  EXPECT_EQ(r->file, "sub/gemma-3-270m-it-Q4_K_M.gguf");

  for (const char* bad : {"org/name", "hf://org", "hf://org/", "hf:///name", "hf://org/name@",
                          "hf://../name", "hf://org/..", "hf://org/name/../x", "hf://org/name/a//b",
                          "hf://org/name/", "hf://or g/name", "hf://org/name@a/b/../../c"}) {
    EXPECT_EQ(ParseHubRef(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HubTest, OptionsFromEnv) {
  setenv("HF_ENDPOINT", "http://127.0.0.1:1234/", 1);
  setenv("HF_HOME", "/tmp/hfhome", 1);
  unsetenv("HF_HUB_CACHE");
  setenv("HF_TOKEN", "tok", 1);
  setenv("HF_HUB_OFFLINE", "1", 1);
  HubOptions o = HubOptions::FromEnv();
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:1234");
  EXPECT_EQ(o.cache_dir, "/tmp/hfhome/hub");
  EXPECT_EQ(o.token, "tok");
  EXPECT_TRUE(o.offline);
  EXPECT_EQ(HubRepoDir(o, *ParseHubRef("hf://a/b")), "/tmp/hfhome/hub/models--a--b");
  setenv("HF_HUB_CACHE", "/tmp/hubcache", 1);
  setenv("HF_HUB_OFFLINE", "0", 1);
  o = HubOptions::FromEnv();
  EXPECT_EQ(o.cache_dir, "/tmp/hubcache");
  EXPECT_FALSE(o.offline);
  for (const char* k : {"HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE"}) {
    unsetenv(k);
  }
}

TEST(HubTest, OfflineWithoutCacheFailsFast) {
  HubOptions o;
  o.cache_dir = "/nonexistent-kiln-cache";
  o.offline = true;
  auto path = HubFetch(*ParseHubRef("hf://a/b"), o);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), StatusCode::kNotFound);
  EXPECT_NE(path.status().message().find("HF_HUB_OFFLINE"), std::string::npos);
}

TEST(ModelPathTest, ResolvesPathsAndDefault) {
  EXPECT_EQ(*ResolveModelPath("/"), "/");
  EXPECT_EQ(ResolveModelPath("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveModelPath("/no/such/model.gguf").status().code(), StatusCode::kNotFound);
  setenv("KILN_CACHE", "/nonexistent-kiln-cache", 1);
  EXPECT_EQ(KilnCacheDir(), "/nonexistent-kiln-cache");
  auto d = ResolveModelPath("default");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("scripts/fetch_models.sh"), std::string::npos);
  unsetenv("KILN_CACHE");
}

}  // namespace
}  // namespace kiln::io
