// The storage array of hw/mem/onchip_memory.py's OnChipMemory when it is built with
// array="verilog" (Verilator frames of configs whose image is tens of MB).
//
// One synchronous read port (rdata is the read register: it takes mem[raddr] on a clock edge with
// ren high and holds otherwise; a read and a write of the same word in one cycle return the old
// word) and one synchronous write port: the ports of an amaranth.lib.memory.Memory with a
// non-transparent read port, which OnChipMemory uses otherwise. Why Verilog: Amaranth and Yosys
// write every word of a Memory's initial contents into the Verilog (a 36.8 MB M3ViT image is
// 9.2 M `mem[i] = ...` lines, ~40 s per MB to elaborate), while this array starts at zero
// (Verilator's default) and is filled at time 0 from the hex file named by the plusarg
// +edge_moe_mem=<path> (one WIDTH-bit word per line, $readmemh), if given.
module edge_moe_sim_ram #(
    parameter WIDTH = 32,
    parameter DEPTH = 1,
    parameter ABITS = 1
) (
    input  wire             clk,
    input  wire             ren,
    input  wire [ABITS-1:0] raddr,
    output reg  [WIDTH-1:0] rdata,
    input  wire             wen,
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [8*1024-1:0] path;

    initial begin
        rdata = {WIDTH{1'b0}};
        if ($value$plusargs("edge_moe_mem=%s", path))
            $readmemh(path, mem);
    end

    always @(posedge clk) begin
        if (ren)
            rdata <= mem[raddr];
        if (wen)
            mem[waddr] <= wdata;
    end
endmodule
