using Engine.Runtime.Chat;
using Engine.Runtime.Tokenization;

namespace Engine.Runtime.Cli;

/// <summary>ntrun --chat, as llama.cpp's llama-simple-chat: each user line is added to the conversation, the whole
/// conversation is formatted with the chat format, and only the text past what was formatted before is tokenized
/// and fed (BOS only for the first), so the KV cache carries the conversation across turns. The reply streams until
/// an end-of-generation token, which is not fed: the next turn's formatted text carries it (&lt;|eot_id|&gt;, &lt;/s&gt;).
/// An empty line or the end of input ends the chat; Ctrl-C ends the reply being generated.</summary>
internal static class ChatLoop
{
    public static int Run(LoadedPlan loaded, NtrunOptions o, TextReader input)
    {
        var format = o.ChatFormat != null ? ChatFormat.FromName(o.ChatFormat) : ChatFormat.Detect(loaded.Tokenizer.ChatTemplate);
        var tokenizer = loaded.Tokenizer;
        var session = loaded.OpenSession(Program.Sampling(o));
        var text = new Utf8Console(Console.Out);
        var decoder = new StreamingDecoder(tokenizer);
        var reply = new List<byte>();
        var messages = new List<ChatMessage>();
        string? system = o.Prompt ?? (o.PromptFile != null ? File.ReadAllText(o.PromptFile) : null);
        if (system != null) messages.Add(new ChatMessage("system", system));
        int formattedBefore = 0;
        bool echo = Console.IsInputRedirected || input != Console.In;

        while (true)
        {
            Console.Out.Write("> ");
            string? line = input.ReadLine();
            if (string.IsNullOrEmpty(line)) { if (line == null || echo) Console.Out.WriteLine(); break; }
            if (echo) Console.Out.WriteLine(line);

            messages.Add(new ChatMessage("user", line));
            string formatted = format.Apply(messages, addAssistantPrompt: true);
            int[] tokens = tokenizer.Encode(formatted[formattedBefore..], addSpecial: session.Position == 0, parseSpecial: true);
            Program.CheckFits(tokens.Length, session.Position, loaded, o.PlanPath!);
            session.Feed(tokens);

            using var interrupt = new CtrlC();
            reply.Clear();
            decoder.Reset();
            int last = -1, start = session.Position;
            bool ended = false;
            int budget = Math.Min(o.Predict, session.ContextRemaining);
            int produced = session.Generate(budget, id => ended = !o.IgnoreEos && tokenizer.IsEndOfGeneration(id), (token, _) =>
            {
                last = token;
                var piece = decoder.Push(token);
                foreach (byte b in piece) reply.Add(b);
                text.Write(piece);
            }, interrupt.Token, withLogits: false);
            var tail = decoder.Flush();
            foreach (byte b in tail) reply.Add(b);
            text.Write(tail);
            Console.Out.WriteLine();
            // Session.Generate does not feed the token it stops on; a reply cut by -n or Ctrl-C is fed so the cache
            // holds all of it (an end-of-generation token is not: the formatted history brings it next turn).
            if (!ended && produced > 0 && session.Position == start + produced - 1 && session.ContextRemaining > 0) session.Feed(last);

            messages.Add(new ChatMessage("assistant", System.Text.Encoding.UTF8.GetString(reply.ToArray())));
            formattedBefore = format.Apply(messages, addAssistantPrompt: false).Length;
            if (session.ContextRemaining == 0)
            {
                Console.Error.WriteLine($"ntrun: the context of {loaded.Context} tokens is full");
                return 1;
            }
        }
        return 0;
    }
}
