"""HF transformers models from small configs: the corpus analyses these factories statically (the
transformers sources they import are read from the installed package, never imported) and the
corpus test calls them with torch to get the ground truth.

Each factory's forward inputs are declared in ``INPUTS`` (shapes over B and T)."""
from transformers import (BartConfig, BartModel, BertConfig, BertModel, CLIPConfig, CLIPModel,
                          DistilBertConfig, DistilBertModel, FalconConfig, FalconModel, GemmaConfig,
                          GemmaModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaModel,
                          MistralConfig, MistralModel, PhiConfig, PhiModel, Qwen2Config, Qwen2Model,
                          RobertaConfig, RobertaModel, T5Config, T5Model, ViTConfig, ViTModel,
                          WhisperConfig)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

TOKENS = {"input_ids": "[B, T]:int64"}
DECODER_LAYERS = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                      vocab_size=1000, max_position_embeddings=128)


def gpt2():
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128))


def bert():
    return BertModel(BertConfig(**DECODER_LAYERS))


def roberta():
    return RobertaModel(RobertaConfig(**DECODER_LAYERS))


def distilbert():
    return DistilBertModel(DistilBertConfig(n_layers=2, dim=64, n_heads=4, hidden_dim=128, vocab_size=1000,
                                            max_position_embeddings=128))


def llama():
    return LlamaModel(LlamaConfig(num_key_value_heads=2, **DECODER_LAYERS))


def mistral():
    return MistralModel(MistralConfig(num_key_value_heads=2, **DECODER_LAYERS))


def qwen2():
    return Qwen2Model(Qwen2Config(num_key_value_heads=2, **DECODER_LAYERS))


def gemma():
    return GemmaModel(GemmaConfig(num_key_value_heads=2, head_dim=16, **DECODER_LAYERS))


def phi():
    return PhiModel(PhiConfig(**DECODER_LAYERS))


def falcon():
    return FalconModel(FalconConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, vocab_size=1000))


def t5():
    return T5Model(T5Config(num_layers=2, num_decoder_layers=2, d_model=64, d_kv=16, d_ff=128, num_heads=4,
                            vocab_size=1000))


def bart():
    return BartModel(BartConfig(encoder_layers=2, decoder_layers=2, d_model=64, encoder_attention_heads=4,
                                decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                                vocab_size=1000, max_position_embeddings=128))


def vit():
    return ViTModel(ViTConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                              image_size=32, patch_size=8))


def whisper_encoder():
    return WhisperEncoder(WhisperConfig(encoder_layers=2, d_model=64, encoder_attention_heads=4,
                                        encoder_ffn_dim=128, num_mel_bins=16, max_source_positions=32))


def clip():
    return CLIPModel(CLIPConfig(
        text_config=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                         vocab_size=1000, max_position_embeddings=32),
        vision_config=dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                           image_size=32, patch_size=8),
        projection_dim=32))


INPUTS = {
    "gpt2": TOKENS, "bert": TOKENS, "roberta": TOKENS, "distilbert": TOKENS, "llama": TOKENS,
    "mistral": TOKENS, "qwen2": TOKENS, "gemma": TOKENS, "phi": TOKENS, "falcon": TOKENS,
    "t5": {"input_ids": "[B, T]:int64", "decoder_input_ids": "[B, T]:int64"},
    "bart": TOKENS,
    "vit": {"pixel_values": "[B, 3, 32, 32]:float32"},
    "whisper_encoder": {"input_features": "[B, 16, 64]:float32"},
    "clip": {"input_ids": "[B, T]:int64", "pixel_values": "[B, 3, 32, 32]:float32"},
}
