namespace Engine.Kernels;

/// <summary>The register cap PtxBuild writes into an entry point's PTX (<c>.maxnreg</c>), 0 for none: the int8 GEMVs'
/// (<see cref="Gemv.MaxRegisters"/>; their f32act entries are not capped, the f32 lane path was not measured with it)
/// and the short attention kernels' (<see cref="AttentionShort.MaxRegisters"/>).</summary>
public static class RegisterCaps
{
    public static int Of(string family, string? format, bool f32Activations)
    {
        int gemv = f32Activations ? 0 : Gemv.MaxRegisters(family, format);
        return gemv > 0 ? gemv : AttentionShort.MaxRegisters(family);
    }
}
