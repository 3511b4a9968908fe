using System.Text;

namespace Engine.Runtime.Chat;

/// <summary>One chat turn: role ("system", "user", "assistant") and its text.</summary>
public readonly record struct ChatMessage(string Role, string Content);

/// <summary>A chat format could not be chosen or applied. The message is one line naming the format and the known
/// ones.</summary>
public sealed class ChatFormatException(string message) : Exception(message);

/// <summary>Prompt text for a conversation, as llama.cpp's llm_chat_apply_template (llama-chat.cpp) writes it for the
/// Llama formats: "llama2" and its variants ([INST] … [/INST], &lt;&lt;SYS&gt;&gt;) and "llama3"
/// (&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;). The format is given by name or
/// detected from the model's tokenizer.chat_template with llama.cpp's rules (llm_chat_detect_template). The text
/// carries no BOS: the tokenizer adds it (add_special), and special tokens in it are parsed (parse_special).</summary>
public sealed class ChatFormat
{
    /// <summary>The formats this engine writes, by llama.cpp's names.</summary>
    public static readonly IReadOnlyList<string> KnownNames = ["llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "llama3"];

    public string Name { get; }

    private ChatFormat(string name) => Name = name;

    /// <summary>By llama.cpp name ("llama3", "llama2", …).</summary>
    public static ChatFormat FromName(string name) =>
        KnownNames.Contains(name) ? new ChatFormat(name) : throw Unknown($"chat format '{name}' is unknown");

    /// <summary>From a name or a Jinja chat template (tokenizer.chat_template), with llama.cpp's detection rules.</summary>
    public static ChatFormat Detect(string? template)
    {
        if (string.IsNullOrEmpty(template)) throw Unknown("the model has no chat template (tokenizer.chat_template); name a chat format");
        if (KnownNames.Contains(template)) return new ChatFormat(template);
        bool Has(string s) => template.Contains(s, StringComparison.Ordinal);

        // llm_chat_detect_template's checks, in its order, up to the Llama ones; other families it recognises are
        // named in the error so the user learns what the model wants.
        if (Has("<|im_start|>")) throw Unknown("the chat template is ChatML (<|im_start|>), which this engine does not write");
        if (template.StartsWith("mistral", StringComparison.Ordinal) || Has("[INST]"))
        {
            if (Has("[SYSTEM_PROMPT]") || Has("' [INST] ' + system_message") || Has("[AVAILABLE_TOOLS]"))
                throw Unknown("the chat template is a Mistral one ([INST] with [SYSTEM_PROMPT] or tools), which this engine does not write");
            if (Has("content.strip()")) return new ChatFormat("llama2-sys-strip");
            if (Has("bos_token + '[INST]")) return new ChatFormat("llama2-sys-bos");
            if (Has("<<SYS>>")) return new ChatFormat("llama2-sys");
            return new ChatFormat("llama2");
        }
        if (Has("<|assistant|>") && Has("<|end|>")) throw Unknown("the chat template is DeepSeek/Phi style (<|assistant|>), which this engine does not write");
        if (Has("<|START_OF_TURN_TOKEN|>") && Has("<|USER_TOKEN|>")) throw Unknown("the chat template is Command-R, which this engine does not write");
        if (Has("<|start_header_id|>") && Has("<|end_header_id|>")) return new ChatFormat("llama3");
        throw Unknown("the chat template matches no known chat format");
    }

    private static ChatFormatException Unknown(string what) =>
        new($"{what}; known chat formats: {string.Join(", ", KnownNames)}");

    /// <summary>The prompt text. <paramref name="addAssistantPrompt"/> opens the assistant's turn at the end (llama3;
    /// the llama2 formats end on "[/INST]" anyway).</summary>
    public string Apply(IReadOnlyList<ChatMessage> messages, bool addAssistantPrompt = true)
    {
        var sb = new StringBuilder();
        if (Name == "llama3")
        {
            foreach (var m in messages)
                sb.Append("<|start_header_id|>").Append(m.Role).Append("<|end_header_id|>\n\n")
                  .Append(TrimAsciiSpace(m.Content)).Append("<|eot_id|>");
            if (addAssistantPrompt) sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
            return sb.ToString();
        }

        // llama2 and its variants (https://huggingface.co/blog/llama2#how-to-prompt-llama-2)
        bool systemSupported = Name != "llama2";
        bool bosInsideHistory = Name == "llama2-sys-bos";
        bool strip = Name == "llama2-sys-strip";
        bool insideTurn = true; // the first turn's BOS comes from the tokenizer
        sb.Append("[INST] ");
        foreach (var m in messages)
        {
            string content = strip ? TrimAsciiSpace(m.Content) : m.Content;
            if (!insideTurn)
            {
                insideTurn = true;
                sb.Append(bosInsideHistory ? "<s>[INST] " : "[INST] ");
            }
            if (m.Role == "system")
            {
                if (systemSupported) sb.Append("<<SYS>>\n").Append(content).Append("\n<</SYS>>\n\n");
                else sb.Append(content).Append('\n'); // no system slot: the text leads the first user turn
            }
            else if (m.Role == "user") sb.Append(content).Append(" [/INST]");
            else
            {
                sb.Append(content).Append("</s>");
                insideTurn = false;
            }
        }
        return sb.ToString();
    }

    /// <summary>llama-chat.cpp trim(): C isspace (space, \t, \n, \v, \f, \r) at both ends, nothing else.</summary>
    private static string TrimAsciiSpace(string s) => s.Trim(' ', '\t', '\n', '\v', '\f', '\r');
}
