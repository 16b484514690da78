"""Prompts longer than CLIP's 77 tokens, encoded whole instead of cut.

SDXL's two CLIP text encoders see 77 positions: a start token, 75 prompt tokens and an end token; the stock
pipeline silently drops everything after the 75th token, and the upstream prompt writer produces 150-300 words.
We split the tokens into 75-token chunks, encode each chunk as its own 77-token sequence (start, chunk, end,
padding) through both encoders, and concatenate the per-chunk hidden states along the sequence axis: the UNet's
cross-attention takes any sequence length. This is the long-prompt scheme of AUTOMATIC1111's webui and of compel;
we do not use compel itself because it parses `(word)1.2` / `word+` weighting syntax, which would change the
meaning of our users' plain-text prompts. For a prompt of at most 75 tokens the result is exactly the stock
`encode_prompt` output (tested), so short prompts give the same images as a plain diffusers call.

The pooled embedding (SDXL's second conditioning) comes from text_encoder_2 on the first chunk, as in A1111.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_TOKENS = 75  # 77 positions minus the start and end tokens


@dataclass(frozen=True)
class TokenInfo:
    tokens: int  # prompt tokens, without start/end
    chunks: int  # 75-token chunks it needs

    def encoding(self, truncate: bool) -> str:
        if self.tokens <= CHUNK_TOKENS:
            return "full"
        return "truncated" if truncate else "chunked"


def token_info(tokenizer, prompt: str) -> TokenInfo:
    count = len(tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids)
    return TokenInfo(count, max(1, -(-count // CHUNK_TOKENS)))


def _chunk_ids(tokenizer, prompt: str, chunks: int) -> list[list[int]]:
    ids = tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids
    rows = []
    for index in range(chunks):
        piece = ids[index * CHUNK_TOKENS : (index + 1) * CHUNK_TOKENS]
        row = [tokenizer.bos_token_id, *piece, tokenizer.eos_token_id]
        rows.append(row + [tokenizer.pad_token_id] * (CHUNK_TOKENS + 2 - len(row)))
    return rows


def encode_long(pipe, prompts: list[str], chunks: int):
    """(embeds [batch, chunks*77, dim], pooled [batch, dim]) for prompts of at most `chunks` chunks each;
    shorter prompts are padded with chunks of the empty prompt."""
    import torch

    pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    pairs = [(tokenizer, encoder) for tokenizer, encoder in pairs if encoder is not None]
    per_encoder, pooled = [], None
    for tokenizer, encoder in pairs:
        rows = [row for prompt in prompts for row in _chunk_ids(tokenizer, prompt, chunks)]
        device = next(encoder.parameters()).device
        output = encoder(torch.tensor(rows, device=device), output_hidden_states=True)
        hidden = output.hidden_states[-2]  # SDXL conditions on the penultimate layer
        per_encoder.append(hidden.reshape(len(prompts), chunks * hidden.shape[1], hidden.shape[2]))
        if output[0].ndim == 2:  # CLIPTextModelWithProjection: the projected pooled embedding
            pooled = output[0].reshape(len(prompts), chunks, -1)[:, 0]
    return torch.cat(per_encoder, dim=-1), pooled


def prompt_embeddings(pipe, prompts: list[str], negative: str | None, chunks: int, device, dtype) -> dict:
    """The keyword arguments (prompt_embeds, negative_prompt_embeds and pooled) for one SDXL pipeline call."""
    import torch

    embeds, pooled = encode_long(pipe, prompts, chunks)
    if negative is None and pipe.config.force_zeros_for_empty_prompt:
        negative_embeds, negative_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
    else:
        negative_embeds, negative_pooled = encode_long(pipe, [negative or ""] * len(prompts), chunks)
    return {
        "prompt_embeds": embeds.to(device=device, dtype=dtype),
        "pooled_prompt_embeds": pooled.to(device=device, dtype=dtype),
        "negative_prompt_embeds": negative_embeds.to(device=device, dtype=dtype),
        "negative_pooled_prompt_embeds": negative_pooled.to(device=device, dtype=dtype),
    }
