using Engine.Runtime.Chat;
using Xunit;

namespace Engine.Runtime.Tests.Chat;

/// <summary>Templates and expected prompts from llama.cpp's tests/test-chat-template.cpp (80fb11ac, the
/// llama_chat_apply_template cases for the Llama formats), on its conversation.</summary>
public sealed class ChatFormatTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "You are a helpful assistant"),
        new("user", "Hello"),
        new("assistant", "Hi there"),
        new("user", "Who are you"),
        new("assistant", "   I am an assistant   "),
        new("user", "Another question"),
    ];

    public static TheoryData<string, string, string, string> Cases => new()
    {
        { "mistralai/Mistral-7B-Instruct-v0.2", "llama2",
            "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
            "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]" },
        { "TheBloke/FusionNet_34Bx2_MoE-AWQ", "llama2-sys-bos",
            "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] == 'assistant' -%}\n{{- ' '  + messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}",
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]" },
        { "bofenghuang/vigogne-2-70b-chat", "llama2-sys-strip",
            "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif true == true and not '<<SYS>>' in messages[0]['content'] %}{% set loop_messages = messages %}{% set system_message = 'Vous êtes Vigogne, un assistant IA créé par Zaion Lab. Vous suivez extrêmement bien les instructions. Aidez autant que vous le pouvez.' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]" },
        { "Llama-3", "llama3",
            "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}",
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Detected_template_gives_llama_cpp_prompt(string model, string format, string template, string expected)
    {
        var chat = ChatFormat.Detect(template);
        Assert.True(chat.Name == format, $"{model}: detected {chat.Name}, expected {format}");
        Assert.Equal(expected, chat.Apply(Conversation, addAssistantPrompt: true));
    }

    [Fact]
    public void Llama2_sys_by_name()
    {
        // llama2-sys is FusionNet's layout without the BOS between turns (llama-chat.cpp, add_bos_inside_history)
        Assert.Equal("[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]",
            ChatFormat.FromName("llama2-sys").Apply(Conversation));
    }

    [Fact]
    public void Llama3_by_name_without_assistant_prompt()
    {
        Assert.Equal("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
            ChatFormat.FromName("llama3").Apply([new("user", " Hi\n")], addAssistantPrompt: false));
    }

    [Theory]
    [InlineData("chatml")]
    [InlineData("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}")]
    [InlineData("INVALID TEMPLATE")]
    public void Unknown_format_is_one_line_naming_the_known_ones(string nameOrTemplate)
    {
        var e = Assert.Throws<ChatFormatException>(() => ChatFormat.Detect(nameOrTemplate));
        Assert.DoesNotContain("\n", e.Message);
        Assert.Contains("known chat formats: llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, llama3", e.Message);
        Assert.Throws<ChatFormatException>(() => ChatFormat.FromName(nameOrTemplate));
    }
}
