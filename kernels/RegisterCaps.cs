namespace Engine.Kernels;

/// <summary>The register cap PtxBuild writes into an entry point's PTX (<c>.maxnreg</c>), 0 for none: the int8 GEMVs'
/// (<see cref="Gemv.MaxRegisters"/>; their f32act entries are not capped, the f32 lane path was not measured with it),
/// the tensor-core GEMMs' (<see cref="Gemm.MaxRegisters"/>) and the short attention kernels'
/// (<see cref="AttentionShort.MaxRegisters"/>).</summary>
public static class RegisterCaps
{
    public static int Of(string family, string? format, bool f32Activations)
    {
        int gemv = f32Activations ? 0 : Gemv.MaxRegisters(family, format);
        if (gemv > 0) return gemv;
        int gemm = Gemm.MaxRegisters(family, format);
        return gemm > 0 ? gemm : AttentionShort.MaxRegisters(family);
    }
}
