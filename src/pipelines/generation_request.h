// One generation as every front end asks for it (the CLI, `pigment serve`'s A1111 and OpenAI endpoints, --from-png):
// the pipeline's GenerateRequest plus what lies around it (a seed that may be random, how many images, LoRA files,
// mask inversion), with validation that names the field, the A1111 infotext in both directions, and the adapters
// (LoRA, LyCORIS, hypernetworks, textual inversion) a prompt names, loaded by name from configured folders.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"

namespace pigment {

// A request field that fails validation. `field` is the request's field name in the A1111 API's spelling
// ("steps", "cfg_scale", "hr_scale"), `reason` the rest; what() is "field: reason".
class FieldError : public Error {
 public:
  FieldError(const std::string& field, const std::string& reason)
      : Error(field + ": " + reason), field(field), reason(reason) {}
  std::string field, reason;
};

struct GenerationRequest {
  // The pipeline's request. Its prompt and negative prompt are as given, <lora:…> / <hypernet:…> tags included;
  // load_adapters() removes them. Its seed is set per image from `seed` below.
  GenerateRequest gen;
  int64_t seed = -1;    // -1: a random one, chosen when the job runs
  int batch_count = 1;  // images made one after the other with seeds seed, seed+1, … (A1111: n_iter × batch_size)
  std::vector<std::string> lora_files;  // FILE[:WEIGHT], applied besides the prompt's tags
  std::string lora_apply = "merge";     // merge | runtime (LoraApply)
  bool mask_invert = false;             // A1111's inpainting_mask_invert: black repaints
  bool crop_coords_given = false;       // the infotext records "SDXL crop coords" even when 0x0
  // The defaults of `pigment generate`: A1111's GPU seeds ("cuda") and mask blur 4.
  GenerationRequest() {
    gen.rng = "cuda";
    gen.mask_blur = 4;
  }
};

// What a server (or any caller) allows per request; beyond it validate() fails naming the field.
struct RequestLimits {
  int64_t max_pixels = 4096ll * 4096;  // output width × height (the hires fix's larger size included)
  int max_steps = 1000;
  int max_batch = 1000;  // batch_count
};

// Checks every field that needs no model (sizes are multiples of 8, the ranges the pipeline accepts, the sampler and
// schedule names, the hires fix, mask and init image); throws FieldError. StableDiffusion::check_request still
// checks what depends on the model.
void validate(const GenerationRequest& g, const RequestLimits& limits = {});

// The pipeline request for image `index` of the batch: seed + index (the random seed already chosen), the mask
// inverted when asked. `prompt` / `negative` are the prompts without extra-network tags (Adapters).
GenerateRequest pipeline_request(const GenerationRequest& g, uint64_t seed, const std::string& prompt,
                                 const std::string& negative);

// Infotext → request: every field the infotext names replaces the request's, the others stay as they are (so a
// front end applies it over its defaults, then its own explicit fields over it). Values are read strictly: a bad
// one throws one line naming `source`, the field and the value. A missing RNG means A1111's GPU seeds ("cuda").
void apply_infotext(GenerationRequest& g, const Infotext& info, const std::string& source);
GenerationRequest request_from_infotext(const Infotext& info, const std::string& source);

// What the infotext records besides the request: the model, its hash, the VAE, the adapters' hashes and keys of
// other parts (ControlNet units), written before Version.
struct RecipeContext {
  std::string model_path;  // "Model" is its file name without extension
  std::string model_hash;  // "Model hash" (A1111's 10-digit short hash); "" = omitted
  std::string vae_path;
  std::vector<std::string> lora_hashes, ti_hashes;  // "NAME: hash12" items (Adapters)
  std::vector<std::pair<std::string, std::string>> extra;
};
// Request → infotext of the image with `seed`, keys in A1111's order; `pigment generate` writes exactly this.
Infotext request_infotext(const GenerationRequest& g, uint64_t seed, const RecipeContext& ctx);

// A1111's "Masked content" (fill, original, latent noise, latent nothing; any case, '-' or '_' for spaces) and
// "Inpaint area" (Whole picture / Only masked, or whole / masked: true for only masked); nullopt for another value.
std::optional<GenerateRequest::MaskedContent> parse_masked_content(const std::string& label);
std::optional<bool> parse_inpaint_only_masked(const std::string& label);

// The A1111 label of a sampler ("Euler a") and schedule type ("Karras") as an infotext writes them; the sampler as
// given when it has no A1111 label.
std::pair<std::string, std::string> a1111_sampler_names(const std::string& sampler, const std::string& schedule);

// Folders where adapters are looked up by name (the CLI's --lora-dir, --embedding-dir, --hypernetwork-dir).
struct AdapterFolders {
  std::string lora_dir, embedding_dir, hypernetwork_dir;
};

// Everything a request's adapter files and prompt tags ask for, loaded before any sampling.
struct Adapters {
  std::vector<LoraChoice> loras;
  std::vector<Embedding> embeddings;
  std::vector<HypernetworkUse> hypernetworks;
  std::vector<std::string> lora_hashes, ti_hashes;  // for the infotext
  std::string prompt, negative_prompt;             // without extra-network tags
  std::vector<std::string> warnings;               // ignored tags and arguments, one line each
};
// Loads g.lora_files, the prompt's <lora:NAME:…> / <lyco:…> / <hypernet:…> tags (NAME.safetensors / .pt / .ckpt /
// .bin in the folder) and the embeddings of `embedding_dir` whose names the prompts use. A missing folder or file
// is one line naming the tag and the folder. Tags in the negative prompt are dropped with a warning, as A1111 does.
Adapters load_adapters(const GenerationRequest& g, const AdapterFolders& folders);
// Adapter files in a folder (.safetensors, .pt, .ckpt, .bin), sorted by name; none when `dir` is empty or missing.
std::vector<std::string> list_adapter_files(const std::string& dir);

}  // namespace pigment
