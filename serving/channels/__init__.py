"""Chat-platform channels: WeCom, Feishu/Lark and DingTalk webhook adapters.

Each adapter verifies and decrypts a platform's callbacks, maps the platform user to
an appliance session, asks a `Responder` for the reply and delivers it the way the
platform expects. They import nothing from the serving stack, so a customer can run
them in front of any OpenAI-compatible backend (`onlycs channels serve`).
"""
