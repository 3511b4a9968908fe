using System.Buffers;
using System.Text;

namespace Engine.Runtime.Tokenization;

/// <summary>Turns generated token ids into UTF-8 text as they come: each token's piece is appended, and the part
/// that forms complete UTF-8 is released; an incomplete multi-byte sequence at the end (a character split over byte
/// tokens, as &lt;0xE6&gt;&lt;0x97&gt;&lt;0xA5&gt;) is held back until its next bytes arrive. Bytes that can never
/// become valid UTF-8 are released as U+FFFD, so every chunk is valid UTF-8. Control tokens are rendered only when
/// <c>renderSpecial</c> is set (llama_token_to_piece's special flag). No allocation per token: the returned span
/// points into a buffer owned by the decoder and is valid until the next call.</summary>
public sealed class StreamingDecoder(Tokenizer tokenizer, bool renderSpecial = false)
{
    private static ReadOnlySpan<byte> Replacement => [0xEF, 0xBF, 0xBD];

    private byte[] _pending = new byte[16];   // held-back bytes of an incomplete sequence, then the new piece
    private int _pendingLength;
    private byte[] _output = new byte[64];

    /// <summary>Appends one token and returns the text that is now complete (possibly empty).</summary>
    public ReadOnlySpan<byte> Push(int tokenId)
    {
        var piece = tokenizer.TokenBytes(tokenId, renderSpecial);
        EnsureCapacity(ref _pending, _pendingLength + piece.Length);
        piece.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += piece.Length;
        return Release(final: false);
    }

    /// <summary>Ends the stream: whatever is still held back is released (an unfinished sequence as U+FFFD).</summary>
    public ReadOnlySpan<byte> Flush() => Release(final: true);

    /// <summary>Forgets held-back bytes, for a new stream.</summary>
    public void Reset() => _pendingLength = 0;

    private ReadOnlySpan<byte> Release(bool final)
    {
        var input = _pending.AsSpan(0, _pendingLength);
        EnsureCapacity(ref _output, input.Length * 3);
        int written = 0, consumed = 0;
        while (consumed < input.Length)
        {
            var status = Rune.DecodeFromUtf8(input[consumed..], out _, out int used);
            if (status == OperationStatus.Done)
            {
                input.Slice(consumed, used).CopyTo(_output.AsSpan(written));
                written += used;
            }
            else if (status == OperationStatus.NeedMoreData && !final)
            {
                break; // a valid start of a sequence that the next token may finish
            }
            else
            {
                Replacement.CopyTo(_output.AsSpan(written));
                written += Replacement.Length;
            }
            consumed += used;
        }
        // keep the unconsumed tail (at most 3 bytes) at the front of the pending buffer
        input[consumed..].CopyTo(_pending);
        _pendingLength = input.Length - consumed;
        return _output.AsSpan(0, written);
    }

    private static void EnsureCapacity(ref byte[] buffer, int needed)
    {
        if (buffer.Length < needed) Array.Resize(ref buffer, Math.Max(needed, buffer.Length * 2));
    }
}
