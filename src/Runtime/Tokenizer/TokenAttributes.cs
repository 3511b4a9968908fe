namespace Engine.Runtime.Tokenization;

/// <summary>llama.cpp's llama_token_attr bits (llama.h), derived from the GGUF token types at load.</summary>
[Flags]
internal enum TokenAttributes
{
    Undefined = 0,
    Unknown = 1 << 0,
    Unused = 1 << 1,
    Normal = 1 << 2,
    Control = 1 << 3,
    UserDefined = 1 << 4,
    Byte = 1 << 5,
}
