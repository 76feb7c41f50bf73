"""What Anthropic publishes about the Claude API, written down once.

Rate limits by tier, model families and their rate-limit pools, per-model capabilities
(forced tool use, minimum cacheable prefix), list prices, the approximate token counter
and the hidden tool-prompt sizes. The emulator, the pipeline and the gateway all read
these; this package imports none of them, so each side treats the API's facts, not the
other side's code, as the contract.
"""
