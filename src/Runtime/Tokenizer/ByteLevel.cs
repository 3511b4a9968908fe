namespace Engine.Runtime.Tokenization;

/// <summary>GPT-2's reversible byte → printable code point map (OpenAI encoder.py bytes_to_unicode; llama.cpp
/// unicode.cpp unicode_byte_to_utf8_map): printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order. Every mapped code point is below U+0144, so one UTF-16 char each.</summary>
internal static class ByteLevel
{
    public static readonly char[] ByteToChar = BuildByteToChar();
    /// <summary>Index: mapped code point (0..0x143); value: the byte, or -1.</summary>
    public static readonly short[] CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var mapped = new bool[256];
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable) { map[b] = (char)b; mapped[b] = true; }
        }
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!mapped[b]) map[b] = (char)(256 + n++);
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var inverse = new short[0x144];
        Array.Fill(inverse, (short)-1);
        for (int b = 0; b < 256; b++) inverse[ByteToChar[b]] = (short)b;
        return inverse;
    }
}
